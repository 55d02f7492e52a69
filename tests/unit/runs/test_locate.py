"""Finding offline W&B run folders wherever a job wrote them (issue 10, point 7)."""

from __future__ import annotations

from pathlib import Path

from bot.runs import locate


def run_folder(root: Path, rel: str) -> Path:
    folder = root / rel
    folder.mkdir(parents=True)
    (folder / "run-x.wandb").write_bytes(b"")
    return folder


def test_runs_in_sub_folders_are_found_by_id(tmp_path):
    hydra = run_folder(tmp_path, "logs/train/runs/2025-01-01_00-00-00/wandb/offline-run-20250101_000000-r-1")
    subdir = run_folder(tmp_path, "tools/wandb/run-20250101_000000-r-2")
    assert locate.find_run_dir([tmp_path], "r-1") == hydra
    assert locate.find_run_dir([tmp_path], "r-2") == subdir
    assert locate.find_run_dir([tmp_path], "r-3") is None
    assert locate.find_run_dir([hydra.parent], "r-1") == hydra, "a wandb folder itself is a root too"


def test_the_walk_skips_what_never_holds_runs_and_stops_at_its_bounds(tmp_path):
    run_folder(tmp_path, ".venv/lib/wandb/offline-run-20250101_000000-r-1")
    run_folder(tmp_path, "a/b/c/d/e/f/g/wandb/offline-run-20250101_000000-r-2")
    assert locate.find_run_dir([tmp_path], "r-1") is None
    assert locate.find_run_dir([tmp_path], "r-2") is None, "deeper than MAX_DEPTH"
    for i in range(50):
        (tmp_path / "data" / f"class{i}").mkdir(parents=True)
    run_folder(tmp_path, "data/class7/wandb/offline-run-20250101_000000-r-5")
    run_folder(tmp_path, "zz/wandb/offline-run-20250101_000000-r-4")
    assert locate.wandb_dirs(tmp_path, max_entries=20) == [tmp_path / "zz" / "wandb"], (
        "a data folder is searched last, and the entry budget runs out in it"
    )
    assert (
        locate.find_run_dir([tmp_path], "r-5")
        == tmp_path / "data" / "class7" / "wandb" / "offline-run-20250101_000000-r-5"
    )


def test_folders_are_remembered_for_a_while(tmp_path):
    now = [0.0]
    folders = locate.WandbFolders(ttl=10, clock=lambda: now[0])
    assert folders.under(tmp_path) == []
    (tmp_path / "wandb").mkdir()
    assert folders.under(tmp_path) == [], "asked again within the ttl: not walked again"
    now[0] = 11.0
    assert folders.under(tmp_path) == [tmp_path / "wandb"]


def test_whether_code_starts_wandb_runs(tmp_path):
    assert not locate.starts_wandb_runs(tmp_path)
    (tmp_path / "train.py").write_text("import torch\n")
    assert not locate.starts_wandb_runs(tmp_path)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "loggers.py").write_text("logger = WandbLogger(project='x', save_dir=out)\n")
    assert locate.starts_wandb_runs(tmp_path)
    (tmp_path / "src" / "loggers.py").unlink()
    (tmp_path / "train.py").write_text("if args.track:\n    import wandb\n    wandb.init(project=p)\n")
    assert locate.starts_wandb_runs(tmp_path)
