"""A file lock shared by threads and processes (git metadata, the state database, servers)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def exclusive(lock_file: Path, *, wait: bool = True) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (created if missing) for the block. With
    wait=False, raise BlockingIOError at once when another holder has it.

    The lock belongs to the open file: a child made by exec (subprocess) does not keep it,
    but a bare os.fork() inside the block would hold it after this process is gone."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, as with plain git
        yield
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        yield  # closing the file releases the lock
