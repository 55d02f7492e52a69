"""A job's limits as they are enforced: cgroups where the bot can make them, rlimits, and a watch
on the disk and the clock; and afterwards, which limit (if any) ended the job.

The reasons use the words the diagnosis already knows: `OUT_OF_MEMORY` (→ oom), `TIMEOUT`
(→ infra, retryable), `Disk quota exceeded` (→ infra).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.launchers.sandbox import cgroups
from bot.launchers.sandbox.policy import Limits, show_duration, show_size

WATCH_INTERVAL_S = 0.1  # a statvfs per disk: cheap; at disk speed, 0.1 s is still a few hundred MB
RESERVE_BYTES = 1 << 30  # the disk keeps this much free for the bot (or half what was free)
CPU_GRACE_S = 5  # between SIGXCPU and SIGKILL


@dataclass
class Group:
    """A run's cgroup for one controller, as the supervisor process finds it again."""

    controller: cgroups.Controller
    path: str
    limit: int

    def to_json(self) -> dict[str, Any]:
        c = self.controller
        return {"name": c.name, "version": c.version, "base": c.base, "path": self.path, "limit": self.limit}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Group:
        return cls(cgroups.Controller(data["name"], data["version"], data["base"]), data["path"], data["limit"])


def plan_groups(limits: Limits, name: str) -> list[Group]:
    """The cgroups this host allows for `limits` (made later, by `make_groups`)."""
    available = cgroups.available()
    wanted = {"memory": limits.memory, "pids": limits.processes}
    return [
        Group(available[kind], str(available[kind].group(name)), value)
        for kind, value in wanted.items()
        if value and kind in available
    ]


def rlimits(limits: Limits, groups: Iterable[Group]) -> dict[str, tuple[int, int]]:
    """Per-process limits: always processes (it holds where the bot is not root), CPU time and
    file size; memory only without a memory cgroup (RLIMIT_DATA, which CUDA's reservations of
    address space do not count against, unlike RLIMIT_AS)."""
    grouped = {g.controller.name for g in groups}
    found: dict[str, tuple[int, int]] = {}
    if limits.processes:
        found["RLIMIT_NPROC"] = (limits.processes, limits.processes)
    if limits.cpu_time:
        found["RLIMIT_CPU"] = (int(limits.cpu_time), int(limits.cpu_time) + CPU_GRACE_S)
    if limits.disk:
        found["RLIMIT_FSIZE"] = (limits.disk, limits.disk)
    if limits.memory and "memory" not in grouped:
        found["RLIMIT_DATA"] = (limits.memory, limits.memory)
    return found


def make_groups(groups: Iterable[Group]) -> list[str]:
    """Create the groups; their cgroup.procs files, for the job to join."""
    return [str(cgroups.create(g.controller, Path(g.path), g.limit) / "cgroup.procs") for g in groups]


def remove_groups(groups: Iterable[Group]) -> None:
    for g in groups:
        cgroups.remove(Path(g.path))


def _used(path: Path) -> tuple[int, int, int] | None:
    """(device, bytes used, bytes free to us) of the filesystem holding `path`."""
    try:
        st, vfs = os.stat(path), os.statvfs(path)
    except OSError:
        return None
    return st.st_dev, (vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize, vfs.f_bavail * vfs.f_frsize


@dataclass(frozen=True)
class Breach:
    reason: str
    urgent: bool = False  # stop at once (a disk filling up), not after the grace period


@dataclass
class Watch:
    """Checks, while the job runs, what no rlimit covers: its wall time, and the disk it writes
    to (the growth of each filesystem it can write on, and a reserve the bot keeps free)."""

    limits: Limits
    paths: list[str]
    started: float = field(default_factory=time.monotonic)
    baseline: dict[int, tuple[int, int]] = field(default_factory=dict)  # device: (used, reserve)

    def __post_init__(self) -> None:
        for path in self.paths:
            if (found := _used(Path(path))) is not None and found[0] not in self.baseline:
                self.baseline[found[0]] = (found[1], min(RESERVE_BYTES, found[2] // 2))

    def breach(self) -> Breach | None:
        """The limit the job has broken; None while it keeps to them."""
        elapsed = time.monotonic() - self.started
        if self.limits.wall_time and elapsed > self.limits.wall_time:
            return Breach(f"TIMEOUT: it ran past its wall-time limit of {show_duration(self.limits.wall_time)}")
        written, seen = 0, set()
        for path in self.paths:
            found = _used(Path(path))
            if found is None or found[0] not in self.baseline or found[0] in seen:
                continue
            device, used, free = found
            seen.add(device)
            start, reserve = self.baseline[device]
            written += max(0, used - start)
            if free < reserve:
                return Breach(
                    f"Disk quota exceeded: the disk holding {path} fell below {show_size(reserve)} free", True
                )
        if self.limits.disk and written > self.limits.disk:
            return Breach(
                f"Disk quota exceeded: it wrote {show_size(written)}, over its disk limit of {show_size(self.limits.disk)}",
                True,
            )
        return None


@dataclass
class Stopper:
    """Stops a job that broke a limit: TERM to its process group, KILL after the grace period."""

    pgid: int
    grace_s: float
    reason: str | None = None
    kill_at: float | None = None

    def tick(self, watch: Watch) -> None:
        if self.reason is None:
            breach = watch.breach()
            if breach is None:
                return
            self.reason = breach.reason
            self.kill_at = time.monotonic() + (0.0 if breach.urgent else self.grace_s)
            _signal(self.pgid, signal.SIGTERM)
        if self.kill_at is not None and time.monotonic() >= self.kill_at:
            _signal(self.pgid, signal.SIGKILL)
            self.kill_at = None


def _signal(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def verdict(
    limits: Limits, groups: Iterable[Group], exit_code: int | None, breach: str | None, output_tail: str = ""
) -> str | None:
    """Why the job ended, when a limit ended it: the watch's breach, the kernel's oom kill, a
    process's CPU time or file size (Python ignores SIGXFSZ: its write fails with EFBIG, "File
    too large", which `output_tail` shows); None when it ended on its own."""
    if breach:
        return breach
    counts = {g.controller.name: cgroups.events(g.controller, Path(g.path)) for g in groups}
    if counts.get("memory") and limits.memory:
        return f"OUT_OF_MEMORY: the kernel killed it for using more than its memory limit of {show_size(limits.memory)}"
    if not exit_code:
        return None
    if exit_code == 128 + signal.SIGXCPU and limits.cpu_time:
        return f"TIMEOUT: a process used more than its CPU time limit of {show_duration(limits.cpu_time)}"
    file_limit = exit_code == 128 + signal.SIGXFSZ or any(text in output_tail for text in FILE_LIMIT_TEXTS)
    if file_limit and limits.disk:
        return f"Disk quota exceeded: a file reached its disk limit of {show_size(limits.disk)}"
    if counts.get("pids") and limits.processes:
        return f"it reached its limit of {limits.processes} processes"
    return None


FILE_LIMIT_TEXTS = ("File too large", "File size limit exceeded", "[Errno 27]")
