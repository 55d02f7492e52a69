"""The sandbox tool, bubblewrap (`bwrap`): found, and tried once per process.

Bubblewrap is what Flatpak runs every application in: a small setuid-free program, in every
major distribution (`apt-get install bubblewrap`), that builds a sandbox from the kernel's
namespaces alone. Being there is not enough (a kernel or a container may refuse user
namespaces), so the first use starts a trivial sandbox and keeps the answer.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

INSTALL_HINT = "install bubblewrap (apt-get install bubblewrap, dnf install bubblewrap)"
PROBE_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Tool:
    """A bubblewrap that works here."""

    path: str
    version: str
    disable_userns: bool  # 0.8+: the job cannot make user namespaces of its own
    default_signal: bool  # coreutils' `env --default-signal`: the job gets TERM though bwrap ignores it


@dataclass(frozen=True)
class ToolCheck:
    tool: Tool | None
    problem: str | None = None  # why there is no tool, for a human


def _run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, errors="replace", timeout=PROBE_TIMEOUT_S
    )


def _trial_argv(path: str, *, disable_userns: bool, inner: list[str]) -> list[str]:
    argv = [path, "--unshare-all", "--unshare-user", "--die-with-parent", "--uid", "65534", "--gid", "65534"]
    if disable_userns:
        argv.append("--disable-userns")
    for root in ("/usr", "/bin", "/lib", "/lib64"):
        source = Path(root)
        if source.is_symlink():
            argv += ["--symlink", str(source.readlink()), root]
        elif source.is_dir():
            argv += ["--ro-bind", root, root]
    return [*argv, "--proc", "/proc", "--dev", "/dev", "--", *inner]


@functools.cache
def check() -> ToolCheck:
    """Find bubblewrap and start a trivial sandbox with it; cached for the process."""
    path = shutil.which("bwrap") or ("/usr/bin/bwrap" if Path("/usr/bin/bwrap").exists() else None)
    if path is None:
        return ToolCheck(None, f"bubblewrap (bwrap) is not installed; {INSTALL_HINT}")
    try:
        version = _run([path, "--version"]).stdout.strip() or "bubblewrap"
        disable_userns = "--disable-userns" in _run([path, "--help"]).stdout
        trial = _run(_trial_argv(path, disable_userns=disable_userns, inner=["/usr/bin/env", "true"]))
        if trial.returncode != 0:
            why = trial.stderr.strip().splitlines()[-1:] or [f"exit status {trial.returncode}"]
            return ToolCheck(None, f"{path} cannot start a sandbox here: {why[0]} (are user namespaces allowed?)")
        signal_trial = _trial_argv(
            path, disable_userns=disable_userns, inner=["/usr/bin/env", "--default-signal=TERM", "true"]
        )
        default_signal = _run(signal_trial).returncode == 0
    except (OSError, subprocess.SubprocessError) as exc:
        return ToolCheck(None, f"{path} could not be run: {exc}")
    return ToolCheck(Tool(path, version, disable_userns, default_signal))
