"""The cost of finding W&B run folders wherever a job wrote them (bot.runs.locate), which the
fix loop pays while it watches a run: a worktree of code, a data folder of 100,000 images in
100 class folders, and a run under the lightning-hydra layout `logs/train/runs/<time>/wandb/`.

Usage: python benchmarks/run_search.py [DIR]   (DIR for the temporary tree, default: the system temp dir)
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.runs.locate import find_run_dir, starts_wandb_runs, wandb_dirs  # noqa: E402

CLASSES, IMAGES = 100, 1_000
REPEATS = 5


def build(root: Path) -> None:
    for i in range(40):
        (root / "src" / f"module_{i}.py").parent.mkdir(parents=True, exist_ok=True)
        (root / "src" / f"module_{i}.py").write_text("import torch\n" * 200)
    (root / "src" / "train.py").write_text("logger = WandbLogger(save_dir=cfg.paths.output_dir)\n")
    for c in range(CLASSES):
        folder = root / "data" / "train" / f"class_{c:03d}"
        folder.mkdir(parents=True)
        for i in range(IMAGES):
            (folder / f"{i:05d}.png").touch()
    run = root / "logs" / "train" / "runs" / "2025-01-01_00-00-00" / "wandb" / "offline-run-20250101_000000-r-1"
    run.mkdir(parents=True)


def best(call: Callable[[], object]) -> tuple[float, object]:
    times, result = [], None
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = call()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(dir=argv[1] if len(argv) > 1 else None) as tmp:
        root = Path(tmp) / "worktree"
        build(root)
        for name, call in (
            ("wandb_dirs (every poll of a branch's runs)", lambda: wandb_dirs(root)),
            ("find_run_dir (a launched run's id)", lambda: find_run_dir([root], "r-1")),
            ("starts_wandb_runs (once per fix)", lambda: starts_wandb_runs(root)),
        ):
            seconds, result = best(call)
            print(f"{name:45s} {seconds * 1000:8.1f} ms   -> {result if not isinstance(result, list) else len(result)}")
        print(f"tree: {CLASSES * IMAGES} data files in {CLASSES} folders, 41 source files, 1 run")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
