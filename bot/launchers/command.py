"""For teams that already have a launch script: a templated shell command.

`launch.command: python tools/launch_job.py --branch {branch} --commit {commit}`

Each value is shell-quoted where it is put, so a branch named `x;rm -rf ~` stays one
argument (write placeholders bare, not inside quotes). The script runs like a local job:
its exit code and output are the run's, and a job id it prints is reported by `status`.
A configured `launch.setup` runs first, as for the local backend.
"""
from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path
from string import Formatter
from typing import Any

from bot.errors import BadInput
from bot.launchers.base import Handle, LaunchSpec, LaunchStatus
from bot.launchers.local import LocalLauncher

PLACEHOLDERS = ("branch", "commit", "repo", "worktree", "run_id")

# What launch scripts print when they submit something; the last match wins.
JOB_ID_PATTERNS = (
    re.compile(r"Submitted batch job (\d+)"),                       # sbatch
    re.compile(r"\b(raysubmit_[A-Za-z0-9]+)"),                      # ray job submit
    re.compile(r"\bjob[ _-]?id\s*[:=]\s*['\"]?([\w.:/-]+)", re.I),  # job id: 123, JOB_ID=abc
)
LOG_TAIL_BYTES = 64 * 1024


def render_command(template: str, values: dict[str, str]) -> str:
    """Fill the placeholders of `template`, each value shell-quoted; anything else → BadInput."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        raise BadInput(f"launch.command: bad template {template!r}: {exc}") from None
    out = []
    for literal, name, format_spec, conversion in parts:
        out.append(literal)
        if name is None:
            continue
        if name not in PLACEHOLDERS or format_spec or conversion:
            raise BadInput(f"launch.command: unknown placeholder {_shown(name, conversion, format_spec)} "
                           f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; "
                           "write {{ and }} for a literal brace)")
        out.append(shlex.quote(str(values[name])))
    return "".join(out)


def _shown(name: str, conversion: str | None, format_spec: str | None) -> str:
    return "{" + name + (f"!{conversion}" if conversion else "") + (f":{format_spec}" if format_spec else "") + "}"


def find_job_id(text: str) -> str | None:
    found = None
    for line in text.splitlines():
        for pattern in JOB_ID_PATTERNS:
            if match := pattern.search(line):
                found = match.group(1)
                break
    return found


class CommandLauncher(LocalLauncher):
    name = "command"

    def launch(self, spec: LaunchSpec) -> Handle:
        values = {"branch": spec.branch, "commit": spec.commit, "repo": spec.repo,
                  "worktree": str(spec.worktree), "run_id": spec.run_id}
        return super().launch(replace(spec, command=render_command(spec.command, values)))

    def supervisor_options(self) -> dict[str, Any]:
        return {"find_job_id": True}

    def status(self, handle: Handle) -> LaunchStatus:
        status = super().status(handle)
        if status.job_id is None:   # still running: look at what it printed so far
            status.job_id = find_job_id(log_tail(Path(handle["log_path"])))
        return status


def log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
