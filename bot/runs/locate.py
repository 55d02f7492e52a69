"""Find offline W&B run folders wherever a job wrote them.

The bot sets `WANDB_DIR` for the jobs it launches, so most runs land in `<worktree>/wandb/`.
Code can still choose another folder: Lightning's `WandbLogger(save_dir=…)` (the
lightning-hydra template writes `logs/train/runs/<time>/wandb/`), `wandb.init(dir=…)`, a job
that `cd`s somewhere first with its own `WANDB_DIR`. So the worktree is searched too: a
breadth-first walk, bounded in depth and in entries read, that skips what never holds runs
(`.git`, virtual environments, caches) and does not descend into the `wandb` folders it finds.

`starts_wandb_runs` tells whether a worktree's code logs to W&B at all, so a run of it that left
no W&B run behind is not taken for a good run on its exit code alone.
"""

from __future__ import annotations

import heapq
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

MAX_DEPTH = 6  # logs/train/runs/<time>/wandb is depth 5
MAX_ENTRIES = 20_000  # a data folder of a million files is not walked through
_SKIP = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".worktrees",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".ipynb_checkpoints",
    }
)
WANDB = "wandb"
# Folders that hold a dataset's many files, not runs: searched last.
_DATA_LIKE = frozenset({"data", "dataset", "datasets", "images", "imgs", "raw", "processed", "cache", ".cache"})


def wandb_dirs(root: Path, *, max_depth: int = MAX_DEPTH, max_entries: int = MAX_ENTRIES) -> list[Path]:
    """Every `wandb` folder under `root` (itself included when it is one), nearest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    if root.name == WANDB:
        return [root]
    found: list[Path] = []
    for _folder, subfolders in _walk(root, max_depth, max_entries):
        found += [Path(entry.path) for entry in subfolders if entry.name == WANDB]
    return found


def _walk(root: Path, max_depth: int, max_entries: int) -> Iterator[tuple[Path, list[os.DirEntry[str]]]]:
    """(folder, its subfolders) breadth first, data-like subtrees (`data/`, `datasets/`, …) after
    all others, skipping what never holds runs and not entering `wandb` folders; at most
    `max_depth` deep and `max_entries` entries read in all."""
    queue: list[tuple[int, int, str, Path]] = [(0, 0, "", root)]
    budget = max_entries
    while queue and budget > 0:
        data_like, depth, _name, folder = heapq.heappop(queue)
        subfolders, read = _subfolders(folder, budget)
        budget -= read
        yield folder, subfolders
        for entry in subfolders:
            if entry.name == WANDB or entry.name in _SKIP or depth + 1 >= max_depth:
                continue
            later = data_like or int(entry.name.lower() in _DATA_LIKE)
            heapq.heappush(queue, (later, depth + 1, entry.path, Path(entry.path)))


class WandbFolders:
    """`wandb_dirs` remembered for `ttl` seconds per root: the loop asks on every poll."""

    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._found: dict[Path, tuple[float, list[Path]]] = {}

    def under(self, root: Path) -> list[Path]:
        now = self.clock()
        cached = self._found.get(root)
        if cached is None or now - cached[0] > self.ttl:
            cached = self._found[root] = (now, wandb_dirs(root))
        return cached[1]


def find_run_dir(roots: Iterable[Path], run_id: str) -> Path | None:
    """The run folder of `run_id` (`offline-run-<time>-<id>` or `run-<time>-<id>`) under any of
    `roots` (folders to search, or `wandb` folders themselves), or None."""
    suffix = f"-{run_id}"
    for root in dict.fromkeys(Path(r) for r in roots):
        for wandb_dir in wandb_dirs(root):
            for child in _children(wandb_dir):
                if child.name.endswith(suffix) and child.name.split("-")[0] in ("offline", "run") and child.is_dir():
                    return Path(child.path)
    return None


def _subfolders(folder: Path, budget: int) -> tuple[list[os.DirEntry[str]], int]:
    """The folder's subfolders (not links), and how many entries were read to find them."""
    folders: list[os.DirEntry[str]] = []
    read = 0
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                read += 1
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry)
                if read >= budget:
                    break
    except OSError:
        pass
    return sorted(folders, key=lambda e: e.name), read


def _children(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return [entry for entry in entries if not entry.is_symlink()]
    except OSError:
        return []


# Calls that start a W&B run, as training code writes them (Lightning's and HF's loggers too).
_STARTS_A_RUN = re.compile(
    r"\bwandb\.init\(|\bWandbLogger\(|report_to\s*=\s*\[?\s*[\"']wandb|\blog_with\s*=\s*[\"']wandb"
)
MAX_SOURCE_FILES = 2_000
MAX_SOURCE_BYTES = 1 << 20


def starts_wandb_runs(root: Path) -> bool:
    """Whether the code under `root` starts W&B runs (a bounded look at its Python files): then a
    run of it that left no W&B run is not verified on its exit code alone."""
    root = Path(root)
    if not root.is_dir():
        return False
    seen = 0
    for folder, _subfolders in _walk(root, MAX_DEPTH, MAX_ENTRIES):
        for path in _python_files(folder):
            seen += 1
            if seen > MAX_SOURCE_FILES:
                return False
            if _STARTS_A_RUN.search(_head(path)):
                return True
    return False


def _python_files(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return sorted(Path(e.path) for e in entries if e.name.endswith(".py") and e.is_file(follow_symlinks=False))
    except OSError:
        return []


def _head(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_SOURCE_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""
