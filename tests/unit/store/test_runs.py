from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.errors import BadInput, OperationFailed
from bot.store.db import MIGRATIONS
from bot.store.runs import RunRecord, StateStore
from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore.open(tmp_path / "state")


def test_open_creates_dir_db_in_wal_mode_at_latest_version(tmp_path: Path):
    store = StateStore.open(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b" / "state.db").is_file()
    assert store.schema_version == len(MIGRATIONS)
    assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_add_get_update_roundtrip(store: StateStore):
    record = store.add_run(
        repo="/src/exp",
        branch="exp-a",
        commit="abc123",
        backend="local",
        handle={"pid": 12, "start_time": 99},
        log_path=Path("/tmp/x/output.log"),
    )
    assert record.id.startswith("r-") and len(record.id) == 10
    assert record.state == "queued" and record.created_at > 0

    updated = store.update_run(record.id, state="finished", exit_code=0, ended_at=5.0)
    again = store.get_run(record.id)
    assert again == updated
    assert (again.state, again.exit_code, again.ended_at) == ("finished", 0, 5.0)
    assert again.handle == {"pid": 12, "start_time": 99}
    assert again.log_path == "/tmp/x/output.log"
    assert json.loads(json.dumps(again.to_json()))["commit"] == "abc123"


def test_update_if_state_only_changes_a_run_in_that_state(store: StateStore):
    record = store.add_run(repo="r", branch="b", backend="local")
    store.update_run(record.id, state="finished", exit_code=0)
    # A late "it started" must not overwrite the end the supervisor already wrote.
    kept = store.update_run(record.id, if_state="queued", state="running")
    assert kept.state == "finished"
    moved = store.update_run(record.id, if_state=("finished", "failed"), state="failed")
    assert moved.state == "failed"


def test_bad_updates_are_refused(store: StateStore):
    record = store.add_run(repo="r", branch="b", backend="local")
    with pytest.raises(BadInput):
        store.update_run("r-missing", state="failed")
    with pytest.raises(ValueError):
        store.update_run(record.id, state="exploded")
    with pytest.raises(TypeError):
        store.update_run(record.id, colour="red")
    with pytest.raises(TypeError):
        store.update_run(record.id, id="r-other")
    assert store.get_run(record.id).state == "queued"


def test_list_filters_and_newest_first(store: StateStore):
    a = store.add_run(repo="r1", branch="main", backend="local", state="finished", created_at=1.0)
    b = store.add_run(repo="r1", branch="exp", backend="local", state="failed", created_at=2.0)
    c = store.add_run(repo="r1", branch="exp", backend="command", state="running", created_at=3.0)
    d = store.add_run(repo="r2", branch="exp", backend="local", state="crashed", created_at=4.0)

    def ids(**filters):
        return [r.id for r in store.list_runs(**filters)]

    assert ids() == [d.id, c.id, b.id, a.id]
    assert ids(repo="r1") == [c.id, b.id, a.id]
    assert ids(branch="exp") == [d.id, c.id, b.id]
    assert ids(repo="r1", branch="exp", state="failed") == [b.id]
    assert ids(state=("failed", "crashed")) == [d.id, b.id]
    assert ids(repo="r1", limit=1) == [c.id]
    assert ids(repo="nope") == []


def test_update_handle_merges(store: StateStore):
    record = store.add_run(repo="r", branch="b", backend="local", handle={"pid": 1})
    merged = store.update_handle(record.id, run_id="any key is fine", job_id="42")
    assert merged.handle == {"pid": 1, "run_id": "any key is fine", "job_id": "42"}
    assert store.get_run(record.id).handle == merged.handle


def test_delete_run(store: StateStore):
    keep = store.add_run(repo="r", branch="b", backend="local")
    gone = store.add_run(repo="r", branch="b", backend="local")
    store.delete_run(gone.id)
    assert store.get_run(gone.id) is None
    assert [r.id for r in store.list_runs()] == [keep.id]


def test_records_persist_across_store_instances(tmp_path: Path):
    first = StateStore.open(tmp_path)
    record = first.add_run(repo="r", branch="b", backend="local", handle={"job": "7"})
    first.close()
    assert StateStore.open(tmp_path).get_run(record.id) == record


def test_failed_transaction_rolls_back(store: StateStore):
    with pytest.raises(sqlite3.IntegrityError):
        with store.transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, repo, branch, backend, state, created_at) "
                "VALUES ('r-1', 'r', 'b', 'local', 'queued', 1)"
            )
            conn.execute(
                "INSERT INTO runs (id, repo, branch, backend, state, created_at) "
                "VALUES ('r-1', 'r', 'b', 'local', 'queued', 1)"
            )
    assert store.list_runs() == []
    store.add_run(repo="r", branch="b", backend="local")  # the connection is usable again


WRITER = """
import sys, time
from pathlib import Path
from bot.store.runs import StateStore
state_dir, worker, shared = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
store = StateStore.open(state_dir)
for i in range(50):
    run = store.add_run(repo="r", branch=f"w{worker}", backend="local")
    store.update_run(run.id, state="running", started_at=float(i))
    store.update_run(run.id, state="finished", exit_code=i)
while store.get_run(shared) is None:
    time.sleep(0.01)
for i in range(50):
    store.update_handle(shared, **{f"{worker}-{i}": i})
"""


def test_concurrent_writers_in_several_processes_lose_nothing(tmp_path: Path):
    state_dir = tmp_path / "fresh"  # every process races to create the db and its schema too
    shared_id = "r-shared00"
    bootstrap = (
        "import sys; from bot.store.runs import StateStore; from pathlib import Path; "
        "StateStore.open(Path(sys.argv[1])).add_run(id=sys.argv[2], repo='r', branch='s', backend='local')"
    )
    writers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(state_dir), str(w), shared_id], cwd=ROOT) for w in range(4)
    ]
    # Writers wait for the shared run before merging into it; create it while they start up.
    subprocess.run([sys.executable, "-c", bootstrap, str(state_dir), shared_id], cwd=ROOT, check=True)
    assert [p.wait(timeout=120) for p in writers] == [0, 0, 0, 0]

    store = StateStore.open(state_dir)
    for w in range(4):
        runs = store.list_runs(branch=f"w{w}")
        assert len(runs) == 50
        assert all(r.state == "finished" for r in runs)
        assert sorted(r.exit_code for r in runs) == list(range(50))
    handle = store.get_run(shared_id).handle
    assert handle == {f"{w}-{i}": i for w in range(4) for i in range(50)}


def test_record_to_json_is_plain(store: StateStore):
    record = store.add_run(repo="r", branch="b", backend="local")
    data = record.to_json()
    assert set(data) == {f for f in RunRecord.__dataclass_fields__}
    json.dumps(data)


def test_record_as_run_info(store: StateStore):
    record = store.add_run(
        repo="r",
        branch="b",
        commit="abc",
        backend="local",
        state="failed",
        exit_code=2,
        started_at=10.0,
        ended_at=20.0,
        wandb_run_path="/w/run-x",
    )
    info = record.to_run_info()
    assert (info.id, info.state, info.branch, info.commit, info.exit_code) == (record.id, "failed", "b", "abc", 2)
    assert (info.updated_at, info.path, info.source) == (20.0, "/w/run-x", "launcher")
    assert (info.record_id, info.log_path) == (record.id, record.log_path)


def test_add_run_unless_active_refuses_a_second_active_run_of_the_branch(store: StateStore):
    first = store.add_run(repo="r", branch="b", backend="local", unless_active=True)
    with pytest.raises(OperationFailed, match=f"a run of branch 'b' is already queued: {first.id}"):
        store.add_run(repo="r", branch="b", backend="local", unless_active=True)
    store.add_run(repo="r", branch="other", backend="local", unless_active=True)
    store.add_run(repo="r2", branch="b", backend="local", unless_active=True)
    store.update_run(first.id, state="failed")
    store.add_run(repo="r", branch="b", backend="local", unless_active=True)
