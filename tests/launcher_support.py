"""Waiting on launched jobs, shared by the launcher tests of every backend."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition",
               poll: float = 0.1) -> Any:
    """Poll until `predicate` returns something truthy, and return it."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)
    return value


def wait_for_end(launcher, handle: dict, timeout: float = 60.0, poll: float = 0.1):
    """The job's final LaunchStatus."""
    return wait_until(lambda: (s := launcher.status(handle)).ended and s, timeout, "the job to end", poll)


def alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
