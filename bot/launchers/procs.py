"""Looking at processes through /proc, so a pid recorded before a restart is trusted only
while it still names the same process (pids are reused)."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.core.files import write_atomic

PROC = Path("/proc")
CGROUP_ROOT = Path("/sys/fs/cgroup")


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    return text[text.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """When the process started, in clock ticks since boot; None when there is no such pid."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def is_alive(pid: int | None, started: int | None) -> bool:
    """True when `pid` runs, is not a zombie, and is the process that started at `started`."""
    if not pid:
        return False
    if not PROC.is_dir():  # no /proc (macOS): trust the pid alone
        return _signal_reaches(lambda: os.kill(pid, 0))
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started


def group_alive(pgid: int) -> bool:
    """True while some live (non-zombie) process belongs to process group `pgid`."""
    if not PROC.is_dir():
        return _signal_reaches(lambda: os.killpg(pgid, 0))
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


def _signal_reaches(send: Callable[[], None]) -> bool:
    try:
        send()
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, it is just not ours
        pass
    return True


def signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def wait_until(done: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
    return True


def exit_code(returncode: int) -> int:
    """Popen's -N for "killed by signal N" as the shell reports it, 128 + N."""
    return 128 - returncode if returncode < 0 else returncode


def oom_kills(pid: int, *, cgroup_root: Path = CGROUP_ROOT, proc: Path = PROC) -> int | None:
    """How many processes the kernel's OOM killer has killed in the memory cgroup of `pid`
    (cgroup v2 `memory.events`, v1 `memory.oom_control`); None when that cannot be read."""
    try:
        lines = (proc / str(pid) / "cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        relative = path.lstrip("/")
        if hierarchy == "0" and not controllers:
            candidates = [
                cgroup_root / relative / "memory.events",
                cgroup_root / "unified" / relative / "memory.events",
            ]
        elif "memory" in controllers.split(","):
            candidates = [cgroup_root / "memory" / relative / "memory.oom_control"]
        else:
            continue
        for candidate in candidates:
            count = _oom_kill_field(candidate)
            if count is not None:
                return count
    return None


def _oom_kill_field(path: Path) -> int | None:
    try:
        text = path.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name == "oom_kill" and value.strip().isdigit():
            return int(value)
    return None


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a reader never sees half a file."""
    write_atomic(path, json.dumps(data))


TERM_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
