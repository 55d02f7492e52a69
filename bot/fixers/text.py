"""Shared by the rule fixers: walking the repo's files and turning line changes into exact edits."""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterator
from pathlib import Path

from bot.diagnosis.model import Diagnosis
from bot.fixers.model import Edit, FixContext

# Folders that are never the user's source or config.
_SKIP_DIRS = {"node_modules", "__pycache__", "venv", "site-packages", "wandb", "outputs"}
_MAX_FILES = 5000


def repo_files(root: Path, suffixes: tuple[str, ...] = (), *, skip_tests: bool = False) -> Iterator[str]:
    """Relative POSIX paths of the worktree's files, sorted, hidden and virtualenv folders skipped."""
    root = Path(root)
    count = 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped_dir(d, skip_tests))
        for name in sorted(files):
            if suffixes and not name.endswith(suffixes):
                continue
            if skip_tests and (name.startswith("test_") or name.endswith("_test.py")):
                continue
            count += 1
            if count > _MAX_FILES:
                return
            yield Path(folder, name).relative_to(root).as_posix()


def _skipped_dir(name: str, skip_tests: bool) -> bool:
    if name.startswith(".") or name in _SKIP_DIRS:
        return True
    return skip_tests and name in ("tests", "test")


def read_text(root: Path, rel: str) -> str | None:
    try:
        return (Path(root) / rel).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def line_edit(path: str, text: str, changes: dict[int, str]) -> list[Edit]:
    """Edits that replace the given 1-based lines of `text` by new text (which may span lines).

    Each edit's `search` is the changed line, widened by neighbouring lines only until it
    occurs exactly once in the file, so formatting and comments elsewhere are untouched.
    """
    lines = text.split("\n")
    edits = []
    for first, last in _runs(sorted(changes)):
        first, last = _widen_until_unique(text, lines, first - 1, last - 1)
        search = "\n".join(lines[first : last + 1])
        replace = "\n".join(changes.get(i + 1, lines[i]) for i in range(first, last + 1))
        edits.append(Edit(path=path, search=search, replace=replace))
    return edits


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """Consecutive line numbers grouped: [3, 4, 9] → [(3, 4), (9, 9)]."""
    runs: list[tuple[int, int]] = []
    for n in numbers:
        if runs and runs[-1][1] == n - 1:
            runs[-1] = (runs[-1][0], n)
        else:
            runs.append((n, n))
    return runs


def _widen_until_unique(text: str, lines: list[str], first: int, last: int) -> tuple[int, int]:
    while True:
        search = "\n".join(lines[first : last + 1])
        if search.strip() and text.count(search) == 1:
            return first, last
        if first == 0 and last == len(lines) - 1:
            return first, last
        # Alternate: one line above, then one below, so the span stays centred.
        if first > 0 and (last - first) % 2 == 0 or last == len(lines) - 1:
            first -= 1
        else:
            last += 1


def char_col(line: str, byte_col: int) -> int:
    """`ast` columns count UTF-8 bytes; string slicing counts characters."""
    return len(line.encode("utf-8")[:byte_col].decode("utf-8", errors="ignore"))


def end_of(node: ast.expr) -> tuple[int, int]:
    """(end line, end byte column) of an expression from `ast.parse`, which sets both on every
    node; the stubs allow None only for nodes built by hand."""
    if node.end_lineno is None or node.end_col_offset is None:
        raise ValueError(f"{type(node).__name__} node has no end position")
    return node.end_lineno, node.end_col_offset


def quoted(text: str) -> list[str]:
    """The single- or double-quoted strings in `text`, in order."""
    return [a or b for a, b in re.findall(r"'([^']*)'|\"([^\"]*)\"", text)]


def failure_texts(diagnosis: Diagnosis) -> list[str]:
    """The exception line, then the evidence bottom-up: the last error in a log is the one
    that killed the run."""
    exc = diagnosis.exception or {}
    return [f"{exc.get('type', '')}: {exc.get('message', '')}", *reversed(diagnosis.evidence)]


def failing_file(ctx: FixContext) -> str | None:
    """The repo file of the traceback's innermost frame, when it is one of the repo's files."""
    return repo_path(ctx.worktree, (ctx.diagnosis.location or {}).get("file"))


def repo_path(root: Path, file: str | None) -> str | None:
    """A traceback's file as a path relative to the worktree, when it is one of the repo's files.

    Tracebacks may carry absolute paths from the machine that ran the job, so the longest
    trailing part of the path that exists in the worktree is taken.
    """
    if not file:
        return None
    parts = Path(file).parts
    for start in range(len(parts)):
        rel = Path(*parts[start:])
        if not rel.is_absolute() and (Path(root) / rel).is_file():
            return rel.as_posix()
    return None
