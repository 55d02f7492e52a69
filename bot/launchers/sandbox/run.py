"""A sandbox for one command: `Sandbox.prepare` wraps its argv, `Prepared` sets up, watches and
reads back its limits, `run_command` runs a short command (a smoke check, an install) to its end.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.core.errors import OperationFailed
from bot.launchers.sandbox import limits as enforced
from bot.launchers.sandbox import tool as bwrap
from bot.launchers.sandbox import view
from bot.launchers.sandbox.policy import Limits, SandboxContext, SandboxPolicy, policy_for
from bot.launchers.sandbox.tool import Tool

ENTER = Path(__file__).with_name("enter.py")
OPT_OUT = "FIX_AND_RELAUNCH_UNSANDBOXED_JOBS=i-understand"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
OOM_SCORE_ADJ = 1000  # when the host runs out of memory, the kernel kills the job, not the bot


class SandboxRefused(OperationFailed):
    """Repository code would have to run unsandboxed, and this bot does not allow it."""


@dataclass
class Prepared:
    """One command, wrapped: what to run and what to set up, watch and read back. JSON-ready,
    so the detached supervisor can take it; it never holds the environment (secrets)."""

    argv: list[str]
    limits: Limits
    groups: list[enforced.Group] = field(default_factory=list)
    watch_paths: list[str] = field(default_factory=list)
    sandboxed: bool = True  # False: limits only (the tool is missing and the operator opted out)

    def start(self) -> enforced.Watch:
        """Make the cgroups (just before the command starts) and start the watch."""
        try:
            enforced.make_groups(self.groups)
        except OSError as exc:
            self.finish()
            raise OperationFailed(f"the sandbox's cgroups could not be made: {exc}") from None
        return enforced.Watch(self.limits, self.watch_paths)

    def verdict(self, exit_code: int | None, breach: str | None, output_tail: str = "") -> str | None:
        """The limit that ended the command, in words (limits.verdict); None when none did."""
        return enforced.verdict(self.limits, self.groups, exit_code, breach, output_tail)

    def finish(self) -> None:
        enforced.remove_groups(self.groups)

    @property
    def note(self) -> str:
        """A line for the job's log, so whoever reads it knows how it ran."""
        how = "in the sandbox" if self.sandboxed else f"UNSANDBOXED ({OPT_OUT})"
        return f"fix-and-relaunch: running {how}; limits: {self.limits.describe()}"

    def to_json(self) -> dict[str, Any]:
        return {
            "argv": self.argv,
            "limits": self.limits.to_json(),
            "groups": [g.to_json() for g in self.groups],
            "watch_paths": self.watch_paths,
            "sandboxed": self.sandboxed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Prepared:
        return cls(
            argv=list(data["argv"]),
            limits=Limits.from_json(data["limits"]),
            groups=[enforced.Group.from_json(g) for g in data.get("groups", [])],
            watch_paths=list(data.get("watch_paths", [])),
            sandboxed=bool(data.get("sandboxed", True)),
        )


@dataclass
class Sandbox:
    """The sandbox for one repository's code on this host (see `sandbox_for`)."""

    policy: SandboxPolicy
    tool: Tool | None  # None: missing, and the operator opted out of the sandbox

    def environment(self, env: Mapping[str, str], keep: Iterable[str] = ()) -> dict[str, str]:
        """`env` cleaned for the job (view.environment), plus what the operator passes on."""
        return view.environment(env, [*keep, *self.policy.env])

    def prepare(
        self,
        argv: Sequence[str],
        *,
        worktree: Path,
        env: Mapping[str, str],
        name: str,
        writable: Iterable[str | Path] = (),
        read_only: Iterable[str | Path] = (),
        watch: Iterable[str | Path] = (),
    ) -> Prepared:
        """`argv` wrapped to run in `worktree` (read-write, with `writable`; `read_only` shown
        too) under this sandbox. `env` is the environment it will run with (its PATH finds the
        toolchain); `name` names its cgroups; `watch` adds paths whose disks its writes are
        counted on (its log). A folder that would show a hidden path is refused (SandboxRefused)."""
        limits = self.policy.limits
        groups = enforced.plan_groups(limits, name)
        rlimits = enforced.rlimits(limits, groups)
        extra = [Path(p) for p in writable]
        setup: dict[str, Any] = {
            "cgroups": [str(Path(g.path) / "cgroup.procs") for g in groups],
            "oom_score_adj": OOM_SCORE_ADJ,
            "rlimits": rlimits,
        }
        inner = list(argv)
        wrapper: list[str] = []
        if self.tool is not None:
            wrapper = [self.tool.path, *self._view(worktree, env, argv, extra, [Path(p) for p in read_only]), "--"]
            if self.tool.default_signal:
                # bwrap dies on TERM and takes the job with it: it ignores the stop signals, the job gets them back.
                setup["ignore"] = [int(s) for s in STOP_SIGNALS]
                inner = ["/usr/bin/env", "--default-signal=TERM,INT,HUP", "--", *inner]
        enter = [sys.executable, "-I", "-S", str(ENTER), json.dumps(setup), "--"]  # -S: no site-packages, a fast start
        return Prepared(
            argv=[*enter, *wrapper, *inner],
            limits=limits,
            groups=groups,
            watch_paths=[str(p) for p in [worktree, *extra, *(Path(w) for w in watch)]],
            sandboxed=self.tool is not None,
        )

    def _view(
        self, worktree: Path, env: Mapping[str, str], argv: Sequence[str], writable: list[Path], read_only: list[Path]
    ) -> list[str]:
        shown = view.build_view(
            worktree=worktree,
            env=env,
            script=" ".join(argv),
            read_only=[*self.policy.read_only, *read_only],
            writable=writable,
            hidden=self.policy.hidden,
        )
        tmp_size = self.policy.limits.disk
        try:
            return shown.bwrap_args(
                network=self.policy.network,
                disable_userns=self.tool.disable_userns if self.tool else False,
                tmp_size=tmp_size,
            )
        except view.ExposesHidden as exc:
            raise SandboxRefused(f"the sandbox would show too much: {exc}") from None


def sandbox_for(config: Mapping[str, Any] | None, settings: SandboxContext) -> Sandbox | None:
    """The sandbox a repository's code runs in, from its repo config under `settings`; None
    when it runs unsandboxed by choice. SandboxRefused when the sandbox is wanted, the tool is
    missing and the operator has not opted out; BadInput when `off` is not allowed here."""
    value = (config or {}).get("launch", {}).get("sandbox")
    policy = policy_for(value, settings)
    if not policy.enabled:
        return None
    found = bwrap.check()
    if found.tool is None and not policy.unsandboxed_ok:
        raise SandboxRefused(
            f"this bot runs repository code only in its sandbox, and {found.problem}. "
            f"Use a cluster backend (slurm, ray, wandb-launch), or set {OPT_OUT} to run it unsandboxed"
        )
    return Sandbox(policy, found.tool)


@dataclass
class Finished:
    """How a command run to its end by `run_command` ended."""

    returncode: int
    output: str
    timed_out: bool = False  # the caller's timeout (it was killed)
    reason: str | None = None  # a sandbox limit that ended it, in words (limits.verdict)


def run_command(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    sandbox: Sandbox | None,
    name: str,
    keep_env: Iterable[str] = (),
    writable: Iterable[str | Path] = (),
) -> Finished:
    """Run `argv` in `cwd` to its end (at most `timeout` seconds), in `sandbox` when one is
    given, with stdout and stderr together. For the short commands the bot runs on its own
    host from repository code: the smoke check, a worktree environment's install."""
    if sandbox is None:
        return _run(list(argv), cwd=cwd, env=dict(env), timeout=timeout, prepared=None)
    prepared = sandbox.prepare(argv, worktree=cwd, env=env, name=name, writable=writable)
    return _run(prepared.argv, cwd=cwd, env=sandbox.environment(env, keep_env), timeout=timeout, prepared=prepared)


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float, prepared: Prepared | None) -> Finished:
    watch = prepared.start() if prepared is not None else None
    try:
        # A session of its own, so a stop reaches the shell's children too.
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
        )
        output, timed_out, breach = _wait(proc, timeout, watch)
        reason = prepared.verdict(proc.returncode, breach, output[-4096:]) if prepared is not None else None
    finally:
        if prepared is not None:
            prepared.finish()
    return Finished(proc.returncode, output, timed_out, reason)


def _wait(proc: subprocess.Popen[str], timeout: float, watch: enforced.Watch | None) -> tuple[str, bool, str | None]:
    deadline = time.monotonic() + timeout
    stopper = enforced.Stopper(proc.pid, grace_s=2.0)
    chunks: list[str] = []
    while True:
        left = deadline - time.monotonic()
        try:
            out, _ = proc.communicate(timeout=max(0.01, min(enforced.WATCH_INTERVAL_S, left)))
            chunks.append(out)
            return "".join(chunks), False, stopper.reason
        except subprocess.TimeoutExpired:
            pass
        if left <= 0:
            _kill(proc.pid)
            out, _ = proc.communicate()
            return out, True, stopper.reason
        if watch is not None:
            stopper.tick(watch)


def _kill(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
