"""Read the last lines of a (possibly huge) log file without reading the whole file."""

from __future__ import annotations

import os
import re
from pathlib import Path

# CSI sequences (colours, cursor moves, erase-line) and OSC sequences (titles, hyperlinks).
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
_BLOCK = 64 * 1024


def clean_line(line: str) -> str:
    """Strip colour codes and keep what a terminal would show of a \\r-rewritten progress line."""
    line = _ANSI.sub("", line).rstrip("\r")
    return line.rsplit("\r", 1)[-1]


def tail_lines(path: str | os.PathLike, n: int = 200, max_bytes: int = 1 << 20) -> list[str]:
    """The last `n` lines of `path`, reading backwards from the end, never more than `max_bytes`.

    Cost depends on the tail, not on the file size. A line longer than `max_bytes` comes back
    as its last `max_bytes` bytes.
    """
    if n <= 0:
        return []
    data, at_start = _read_tail(Path(path), n, max_bytes)
    lines = data.decode("utf-8", errors="replace").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file ended with a newline
    if not at_start and len(lines) > 1:
        lines.pop(0)  # cut mid-line by the backwards read
    return [clean_line(line) for line in lines[-n:]]


def _read_tail(path: Path, n: int, max_bytes: int) -> tuple[bytes, bool]:
    """Blocks from the end until they hold n+1 newlines (+1 for a trailing one) or max_bytes."""
    chunks: list[bytes] = []
    newlines = 0
    with path.open("rb") as f:
        pos = f.seek(0, os.SEEK_END)
        budget = max_bytes
        while pos > 0 and budget > 0 and newlines <= n + 1:
            size = min(_BLOCK, pos, budget)
            pos -= size
            f.seek(pos)
            chunk = f.read(size)
            chunks.append(chunk)
            newlines += chunk.count(b"\n")
            budget -= size
    return b"".join(reversed(chunks)), pos == 0
