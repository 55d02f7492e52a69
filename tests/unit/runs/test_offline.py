"""The offline run store, on real offline runs written by the real wandb library in a real git repo."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bot.core.errors import BadInput
from bot.diagnosis.tail import tail_lines
from bot.runs.offline import OfflineRunStore, read_run
from bot.runs.wandb_file import BLOCK_LEN, RecordReader
from tests.support.git_repos import experiment_branch, git, make_origin
from tests.support.wandb_runs import make_offline_run

STEPS = 300  # enough rows for the log to span several 32 KiB blocks
NOTES = "n" * 70_000  # a config value bigger than two blocks: one record in FIRST/MIDDLE/LAST chunks


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """A clone on `main` with an `exp-a` branch, and the runs every test here reads."""
    _, clone = make_origin(tmp_path_factory.mktemp("offline"), branches={"exp-a": experiment_branch("exp-a")})
    runs = {
        "finished": make_offline_run(
            clone,
            name="good",
            config={"lr": 0.1, "branch": "main", "model": {"depth": 2}, "notes": NOTES},
            steps=[{"loss": 1.0 / (i + 1), "acc": i / STEPS} for i in range(STEPS)],
            stdout="".join(f"epoch {i}\n" for i in range(500)),
        ),
        "failed": make_offline_run(
            clone,
            config={"lr": 10.0, "branch": "main"},
            steps=[{"loss": 2.0**i} for i in range(5)],
            stdout="starting\n",
            crash="raise FloatingPointError('Loss is NaN at step 5')",
        ),
        "killed": make_offline_run(
            clone,
            config={"lr": 0.1, "branch": "main"},
            steps=[{"loss": 0.5}] * 8,
            stdout="".join(f"killed-run line {i}\n" for i in range(3)),
            hard_kill=True,
        ),
        "keyless_main": make_offline_run(clone, config={"lr": 0.2}, steps=[{"loss": 1.0}]),
    }
    git(clone, "checkout", "-q", "exp-a")
    runs["keyless_exp"] = make_offline_run(clone, config={"lr": 0.3}, steps=[{"loss": 1.0}])
    runs["keyed_exp"] = make_offline_run(clone, config={"branch": "exp-a"}, steps=[{"loss": 1.0}])
    git(clone, "checkout", "-q", "main")
    return clone, runs


@pytest.fixture(scope="module")
def store(repo):
    clone, _ = repo
    return OfflineRunStore(
        [clone / "wandb"], commits_on_branch=lambda commit, branch: _is_ancestor(clone, commit, branch)
    )


def _is_ancestor(repo: Path, commit: str, branch: str) -> bool:
    proc = subprocess.run(["git", "merge-base", "--is-ancestor", commit, branch], cwd=repo, capture_output=True)
    return proc.returncode == 0


def test_finished_run_has_config_summary_history_and_log(repo, store):
    clone, runs = repo
    run = read_run(runs["finished"])
    assert (run.state, run.exit_code, run.source, run.name) == ("finished", 0, "offline", "good")
    assert run.config == {"lr": 0.1, "branch": "main", "model": {"depth": 2}, "notes": NOTES}
    assert run.branch == "main"
    assert run.commit == git(clone, "rev-parse", "main")
    assert run.steps == STEPS
    assert run.summary["loss"] == pytest.approx(1.0 / STEPS) and run.summary["_step"] == STEPS - 1
    assert "_wandb" not in run.summary
    assert run.path == str(runs["finished"]) and run.id in runs["finished"].name
    assert run.created_at <= run.updated_at
    assert store.log_tail(run, lines=3) == ["epoch 497", "epoch 498", "epoch 499"]


def test_history_returns_the_last_rows_oldest_first(store, repo):
    run = read_run(repo[1]["finished"])
    rows = store.history(run, rows=4)
    assert [row["_step"] for row in rows] == [296, 297, 298, 299]
    assert rows[-1]["loss"] == pytest.approx(1.0 / STEPS) and rows[0]["acc"] == pytest.approx(296 / STEPS)
    assert len(store.history(run, rows=10_000)) == STEPS
    assert store.history(run, rows=0) == []


def test_failed_run_has_exit_code_and_traceback(repo, store):
    run = read_run(repo[1]["failed"])
    assert (run.state, run.exit_code, run.steps) == ("failed", 1, 5)
    tail = store.log_tail(run, lines=200)
    assert tail[0] == "starting"
    assert "Traceback (most recent call last):" in tail
    assert tail[-1] == "FloatingPointError: Loss is NaN at step 5"


def test_hard_killed_run_is_crashed_or_running_by_last_write(repo):
    run_dir = repo[1]["killed"]
    log = next(run_dir.glob("run-*.wandb"))
    crashed = read_run(run_dir, running_window=0, now=log.stat().st_mtime + 1)
    assert (crashed.state, crashed.exit_code, crashed.steps) == ("crashed", None, 8)
    last_write = max(log.stat().st_mtime, (run_dir / "files" / "output.log").stat().st_mtime)
    assert crashed.updated_at == last_write
    assert crashed.config == {"lr": 0.1, "branch": "main"}
    assert read_run(run_dir, running_window=300, now=last_write + 60).state == "running"


def test_hard_killed_run_log_tail(repo, store):
    run = read_run(repo[1]["killed"])
    assert store.log_tail(run, lines=2) == ["killed-run line 1", "killed-run line 2"]


def test_log_tail_from_the_records_when_output_log_was_never_written(repo, store, tmp_path):
    copy = _copy_run(repo[1]["killed"], tmp_path)
    (copy / "files" / "output.log").write_text("")  # wandb-core died before writing it out
    assert store.log_tail(read_run(copy), lines=2) == ["killed-run line 1", "killed-run line 2"]


def test_finished_run_log_tail_prefers_output_log(repo, store, tmp_path):
    copy = _copy_run(repo[1]["finished"], tmp_path)
    (copy / "files" / "output.log").write_text("only line\n")
    assert store.log_tail(read_run(copy), lines=5) == ["only line"]


def test_killed_before_the_first_flush_is_crashed_with_the_folder_id(tmp_path):
    git(tmp_path, "init", "-q")
    run_dir = make_offline_run(
        tmp_path, config={"branch": "main"}, steps=[{"loss": 1.0}], hard_kill=True, flush_interval=60
    )
    run = read_run(run_dir, running_window=0)
    assert (run.state, run.steps, run.config, run.exit_code) == ("crashed", 0, {}, None)
    assert run_dir.name.endswith("-" + run.id) and run.created_at is not None


def test_runs_newest_first_and_get_by_id(repo, store):
    runs = store.runs()
    assert len(runs) == 6
    assert [r.created_at for r in runs] == sorted((r.created_at for r in runs), reverse=True)
    finished = read_run(repo[1]["finished"])
    assert store.get(finished.id).path == finished.path
    with pytest.raises(BadInput):
        store.get("nosuchid")


def test_branch_by_config_key_then_by_commit_ancestry(repo, store):
    runs = repo[1]
    ids = {key: read_run(path).id for key, path in runs.items()}
    main = {r.id for r in store.runs("main")}
    exp = {r.id for r in store.runs("exp-a")}
    # keyed runs follow their key even though main's commit is on exp-a too
    assert main == {ids["finished"], ids["failed"], ids["killed"], ids["keyless_main"]}
    assert exp == {ids["keyless_main"], ids["keyless_exp"], ids["keyed_exp"]}
    assert store.runs("no-such-branch") == []


def test_without_ancestry_check_keyless_runs_belong_to_no_branch(repo):
    clone, runs = repo
    store = OfflineRunStore(lambda branch: [clone / "wandb"])
    assert {r.id for r in store.runs("exp-a")} == {read_run(runs["keyed_exp"]).id}


def test_custom_branch_key(repo):
    clone, runs = repo
    store = OfflineRunStore([clone / "wandb"], branch_key="lr")
    assert read_run(runs["keyless_exp"], branch_key="lr").branch is None  # a number names no branch
    assert [r.id for r in store.runs("main")] == []


def test_truncated_log_reads_cleanly_up_to_the_damage(repo, tmp_path):
    copy = _copy_run(repo[1]["finished"], tmp_path)
    log = next(copy.glob("run-*.wandb"))
    size = log.stat().st_size
    with log.open("r+b") as fp:
        fp.truncate(size // 2 + 3)  # cuts a record in half
    run = read_run(copy, running_window=0)
    assert run.state == "crashed" and run.exit_code is None
    assert run.config["lr"] == 0.1 and 0 < run.steps < STEPS
    reader = RecordReader(log)
    assert sum(1 for _ in reader) > 0 and reader.error is not None


def test_log_cut_inside_a_multi_block_record(repo, tmp_path):
    copy = _copy_run(repo[1]["finished"], tmp_path)
    log = next(copy.glob("run-*.wandb"))
    with log.open("r+b") as fp:
        fp.truncate(BLOCK_LEN + 100)  # inside the run record that holds NOTES
    run = read_run(copy, running_window=0)
    assert (run.state, run.steps, run.config) == ("crashed", 0, {})
    assert run.id in copy.name  # the id still comes from the folder name


def test_corrupt_chunk_stops_the_read_at_the_damage(repo, tmp_path):
    copy = _copy_run(repo[1]["finished"], tmp_path)
    log = next(copy.glob("run-*.wandb"))
    data = bytearray(log.read_bytes())
    data[len(data) // 2] ^= 0xFF
    log.write_bytes(bytes(data))
    reader = RecordReader(log)
    count = sum(1 for _ in reader)
    assert reader.error == "chunk checksum mismatch" and count > 0
    assert 0 < read_run(copy).steps < STEPS


def test_not_a_run_folder_is_bad_input(tmp_path):
    with pytest.raises(BadInput):
        read_run(tmp_path / "missing")
    with pytest.raises(BadInput):
        read_run(tmp_path)  # a folder without a .wandb log
    (tmp_path / "run-x.wandb").write_bytes(b"not a wandb log at all")
    with pytest.raises(BadInput):
        read_run(tmp_path)


def test_unreadable_folders_do_not_stop_a_listing(repo, tmp_path):
    root = tmp_path / "wandb"
    _copy_run(repo[1]["failed"], root)
    (root / "offline-run-20260101_000000-broken").mkdir()
    (root / "offline-run-20260101_000000-broken" / "run-broken.wandb").write_bytes(b"garbage")
    assert [r.state for r in OfflineRunStore([root]).runs()] == ["failed"]


def test_delete_removes_a_run_under_the_roots_only(repo, tmp_path):
    root = tmp_path / "wandb"
    copy = _copy_run(repo[1]["failed"], root)
    store = OfflineRunStore([root])
    outside = read_run(repo[1]["failed"])
    with pytest.raises(BadInput):
        store.delete(outside)
    assert repo[1]["failed"].is_dir()
    run = store.runs()[0]
    assert run.path == str(copy)
    store.delete(run)
    assert not copy.exists() and store.runs() == []


def test_a_root_may_be_a_run_folder_itself(repo):
    store = OfflineRunStore([repo[1]["failed"]])
    assert [r.path for r in store.runs()] == [str(repo[1]["failed"])]


@pytest.mark.parametrize("ending", ["\n", ""])
def test_the_tail_reads_whole_lines_across_blocks(tmp_path, ending):
    log = tmp_path / "output.log"
    log.write_text("\n".join(f"line {i} " + "x" * 100 for i in range(1000)) + ending)
    assert tail_lines(log, 3) == [f"line {i} " + "x" * 100 for i in (997, 998, 999)]
    assert len(tail_lines(log, 5000)) == 1000


def _copy_run(run_dir: Path, parent: Path) -> Path:
    target = parent / run_dir.name
    shutil.copytree(run_dir, target)
    return target


def test_first_history_reads_only_the_first_rows(repo, store):
    _, runs = repo
    run = store.get(read_run(runs["failed"]).id)
    assert [row["loss"] for row in store.first_history(run, 2)] == [1.0, 2.0]
    assert store.first_history(run, 0) == []
    assert len(store.first_history(run, 100)) == 5
