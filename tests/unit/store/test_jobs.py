"""The job tables' SQL, on a real state database; the queue's rules are tested in tests/unit/app."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.store import jobs as tables
from bot.store.db import Database


@pytest.fixture
def db(tmp_path: Path) -> Database:
    return Database.in_dir(tmp_path)


def add(db: Database, lane: str = "branch:r#b", **payload) -> int:
    with db.transaction() as conn:
        return tables.insert_job(conn, kind="fix", repo="r", branch="b", lane=lane, payload=payload)


def test_insert_get_and_list(db: Database):
    first, second = add(db, x=1), add(db, lane="branch:r#c", x=2)
    row = tables.get_job(db.connection, first)
    assert (row.kind, row.repo, row.lane, row.status, row.payload, row.tries) == (
        "fix",
        "r",
        "branch:r#b",
        "queued",
        {"x": 1},
        0,
    )
    assert not row.cancel_requested and row.error is None
    assert [r.id for r in tables.list_jobs(db.connection)] == [first, second]
    assert tables.list_jobs(db.connection, "running") == [] and tables.get_job(db.connection, 99) is None


def test_first_job_by_status_and_lane(db: Database):
    first, second = add(db), add(db, lane="branch:r#c")
    assert tables.first_job(db.connection, ("queued",)).id == first
    assert tables.first_job(db.connection, ("queued", "running"), lane="branch:r#c").id == second
    assert tables.first_job(db.connection, ("running",)) is None


def test_status_changes(db: Database):
    job = add(db)
    with db.transaction() as conn:
        tables.start_job(conn, job, "running")
    assert (tables.get_job(db.connection, job).status, tables.get_job(db.connection, job).tries) == ("running", 1)
    with db.transaction() as conn:
        tables.request_cancel(conn, "branch:r#b", "running")
        tables.set_status(conn, job, "cancelled", None, unless="done")
        tables.set_status(conn, job, "done", None, unless="cancelled")  # kept: it is cancelled
    row = tables.get_job(db.connection, job)
    assert (row.status, row.cancel_requested) == ("cancelled", True)
    with db.transaction() as conn:
        tables.move_jobs(conn, "cancelled", "queued", lane="branch:r#other")
        assert tables.job_ids(conn, "cancelled") == [job]
        tables.move_jobs(conn, "cancelled", "queued")
    assert tables.count_by_status(db.connection) == {"queued": 1}


def test_a_remembered_key_keeps_its_first_record(db: Database):
    with db.transaction() as conn:
        tables.remember(conn, ["d-1", "comment:1"], 1, "queued")
        tables.remember(conn, ["d-1"], 2, "busy")
    assert tables.seen_keys(db.connection, ["d-1", "d-2", "comment:1"]) == ["d-1", "comment:1"]
    row = db.connection.execute("SELECT job_id, outcome FROM deliveries WHERE delivery_id = 'd-1'").fetchone()
    assert tuple(row) == (1, "queued")


def test_steps_in_the_order_recorded_and_replaced_in_place(db: Database):
    with db.transaction() as conn:
        tables.save_step(conn, 1, "diagnosed", {"category": "oom"})
        tables.save_step(conn, 1, "pushed", "abc")
        tables.save_step(conn, 2, "other", None)
    assert list(tables.load_steps(db.connection, 1).items()) == [("diagnosed", {"category": "oom"}), ("pushed", "abc")]


def test_attempts(db: Database):
    conn = db.connection
    assert tables.attempts(conn, "r", "b") == 0
    tables.add_attempt(conn, "r", "b")
    tables.add_attempt(conn, "r", "b")
    assert (tables.attempts(conn, "r", "b"), tables.attempts(conn, "r", "c")) == (2, 0)
    tables.reset_attempts(conn, "r", "b")
    assert tables.attempts(conn, "r", "b") == 0
