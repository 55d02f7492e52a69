"""Helpers shared by the launcher tests of every backend (their fixtures: tests/unit/launchers/conftest.py)."""

from __future__ import annotations

from pathlib import Path

from tests.support.waiting import wait_until


def make_worktree(tmp_path: Path) -> Path:
    path = tmp_path / "work tree"  # a space, to keep the quoting honest
    path.mkdir()
    return path


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
