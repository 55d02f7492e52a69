"""The one state database: set-up, versioned migrations, the upgrade of a file an earlier release made."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from bot.app.jobs import FixJob
from bot.app.queue import Queue
from bot.store import db as db_module
from bot.store.db import DB_NAME, MIGRATIONS, Database
from bot.store.runs import StateStore

# What release 0.1 ran, verbatim: the run store's migration 1 (user_version 1), and the queue's
# own unversioned script beside it.
OLD_RUNS = (
    """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            "commit" TEXT,
            backend TEXT NOT NULL,
            handle TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            exit_code INTEGER,
            started_at REAL,
            ended_at REAL,
            log_path TEXT,
            wandb_run_id TEXT,
            wandb_run_path TEXT,
            created_at REAL NOT NULL
        )""",
    "CREATE INDEX runs_repo_branch ON runs (repo, branch, created_at)",
    "CREATE INDEX runs_state ON runs (state)",
)
OLD_QUEUE_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    repo TEXT,
    branch TEXT,
    lane TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'queued',
    payload TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id);
CREATE INDEX IF NOT EXISTS jobs_lane ON jobs (lane, status);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id TEXT PRIMARY KEY,
    job_id INTEGER,
    outcome TEXT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS job_steps (
    job_id INTEGER NOT NULL,
    step TEXT NOT NULL,
    data TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    PRIMARY KEY (job_id, step)
);
CREATE TABLE IF NOT EXISTS branch_attempts (
    repo TEXT NOT NULL,
    branch TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated_at REAL NOT NULL,
    PRIMARY KEY (repo, branch)
);
"""
OLD_JOB = {
    "kind": "fix",
    "repo": "team/exp",
    "base_repo": "team/exp",
    "clone_url": "https://github.com/team/exp.git",
    "installation_id": 7,
    "pr": 3,
    "pr_url": "https://api.github.com/repos/team/exp/pulls/3",
    "comments_url": "https://api.github.com/repos/team/exp/issues/3/comments",
    "branch": "exp-a",
    "head_sha": "a" * 40,
    "delivery_id": "d-1",
    "comment_id": 11,
    "dry_run": False,
    "hint": None,
    "requested_by": "ada",
}


def old_release_db(path: Path, *, runs: bool = True, queue: bool = True) -> None:
    """A state.db as release 0.1 left it: a run, a job that was running, its steps and attempts."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    if runs:
        for statement in OLD_RUNS:
            con.execute(statement)
        con.execute("PRAGMA user_version = 1")
        con.execute(
            "INSERT INTO runs (id, repo, branch, backend, state, created_at) "
            "VALUES ('r-00000001', '/src/exp', 'exp-a', 'local', 'failed', 1.0)"
        )
    if queue:
        con.executescript(OLD_QUEUE_SCHEMA)
        con.execute(
            "INSERT INTO jobs (kind, repo, branch, lane, status, payload, tries, created_at, updated_at) "
            "VALUES ('fix', 'team/exp', 'exp-a', 'branch:team/exp#exp-a', 'running', ?, 1, 1, 1)",
            (json.dumps(OLD_JOB),),
        )
        con.execute("INSERT INTO deliveries VALUES ('d-1', 1, 'queued', 1), ('comment:11', 1, 'queued', 1)")
        con.execute("INSERT INTO job_steps VALUES (1, 'pushed', '{\"commit\": \"abc\"}', 1)")
        con.execute("INSERT INTO branch_attempts VALUES ('team/exp', 'exp-a', 2, 1)")
    con.commit()
    con.close()


def tables(path: Path) -> set[str]:
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
    finally:
        con.close()


def test_a_new_file_is_in_wal_mode_with_every_table_at_the_latest_version(tmp_path: Path):
    db = Database.in_dir(tmp_path / "a" / "b")
    assert db.path == tmp_path / "a" / "b" / DB_NAME and db.path.is_file()
    assert db.schema_version == len(MIGRATIONS) == 4
    assert db.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    expected = {"runs", "jobs", "deliveries", "job_steps", "branch_attempts", "inbox", "runs_state", "jobs_lane"}
    assert expected <= tables(db.path)


def test_a_file_the_previous_release_made_upgrades_in_place(tmp_path: Path):
    path = tmp_path / "state" / DB_NAME
    old_release_db(path)
    before = tables(path)

    store = StateStore.open(tmp_path / "state")
    assert store.schema_version == 4 and tables(path) == before | {"inbox"}
    assert [r.id for r in store.list_runs()] == ["r-00000001"]
    queue = Queue(path)
    assert queue.recover() == [1]
    job = queue.claim()
    assert (job.id, job.tries, job.fix.installation_id, job.fix.comment_id) == (1, 2, 7, 11)
    assert job.payload.to_json() == OLD_JOB
    assert queue.steps(1) == {"pushed": {"commit": "abc"}} and queue.attempts_used("team/exp", "exp-a") == 2
    assert queue.seen("comment:11")
    queue.finish(job.id)
    again = FixJob(repo="team/exp", branch="exp-a", clone_url="u", installation_id=7, delivery_id="d-2")
    assert queue.enqueue(again).outcome == "queued" and queue.get(2).fix.delivery_id == "d-2"


@pytest.mark.parametrize("runs, queue", [(False, True), (True, False)])
def test_a_file_with_only_one_half_upgrades_too(tmp_path: Path, runs: bool, queue: bool):
    """Release 0.1's queue alone left user_version 0 beside its tables; its run store alone, version 1."""
    path = tmp_path / DB_NAME
    old_release_db(path, runs=runs, queue=queue)
    db = Database(path)
    assert db.schema_version == 4
    assert {"runs", "jobs", "deliveries", "job_steps", "branch_attempts", "inbox"} <= tables(path)
    count = db.connection.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    assert count == (1 if queue else 0)


def test_a_new_migration_is_applied_once_to_an_existing_db(tmp_path: Path, monkeypatch):
    StateStore.open(tmp_path).add_run(repo="r", branch="b", backend="local")
    monkeypatch.setattr(db_module, "MIGRATIONS", [*MIGRATIONS, ("CREATE TABLE extra (id INTEGER PRIMARY KEY)",)])
    store = StateStore.open(tmp_path)
    assert store.schema_version == len(MIGRATIONS) + 1
    StateStore.open(tmp_path)  # would fail with "table extra already exists" if re-run
    assert len(store.list_runs()) == 1
    assert store.connection.execute("SELECT count(*) FROM extra").fetchone()[0] == 0


def test_a_file_from_a_later_release_is_left_as_it_is(tmp_path: Path):
    db = Database(tmp_path / DB_NAME)
    db.connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 3}")
    assert Database(tmp_path / DB_NAME).schema_version == len(MIGRATIONS) + 3


def test_a_failed_transaction_rolls_back_and_the_connection_stays_usable(tmp_path: Path):
    db = Database(tmp_path / DB_NAME)
    with pytest.raises(sqlite3.IntegrityError):
        with db.transaction() as conn:
            conn.execute("INSERT INTO branch_attempts VALUES ('r', 'b', 1, 1)")
            conn.execute("INSERT INTO branch_attempts VALUES ('r', 'b', 1, 1)")
    assert db.connection.execute("SELECT COUNT(*) FROM branch_attempts").fetchone()[0] == 0
    with db.transaction() as conn:
        conn.execute("INSERT INTO branch_attempts VALUES ('r', 'b', 1, 1)")
    assert db.connection.execute("SELECT COUNT(*) FROM branch_attempts").fetchone()[0] == 1


def test_each_thread_has_its_own_connection_and_close_reopens(tmp_path: Path):
    db = Database(tmp_path / DB_NAME)
    mine = db.connection
    theirs: list[sqlite3.Connection] = []
    thread = threading.Thread(target=lambda: theirs.append(db.connection))
    thread.start()
    thread.join()
    assert db.connection is mine and theirs[0] is not mine
    db.close()
    assert db.connection is not mine and db.schema_version == len(MIGRATIONS)
