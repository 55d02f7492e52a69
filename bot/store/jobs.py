"""The job queue's tables, in the state database: `jobs`, `deliveries`, `job_steps`, `branch_attempts`.

SQL only: each function runs its statements on the connection it is given, so a caller
combines several in one transaction (`Database.transaction()`). What the rows mean — dedupe,
lanes, statuses — is `bot.app.queue`'s business. Payloads and step data are JSON.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class JobRow:
    id: int
    kind: str
    repo: str | None
    branch: str | None
    lane: str
    status: str
    payload: dict[str, Any]
    tries: int
    cancel_requested: bool
    error: str | None
    wait: dict[str, Any] | None = None  # what a waiting job waits for
    due_at: float | None = None  # when a waiting job is woken at the latest (unix s)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> JobRow:
        return cls(
            id=row["id"],
            kind=row["kind"],
            repo=row["repo"],
            branch=row["branch"],
            lane=row["lane"],
            status=row["status"],
            payload=json.loads(row["payload"]),
            tries=row["tries"],
            cancel_requested=bool(row["cancel_requested"]),
            error=row["error"],
            wait=json.loads(row["wait"]) if row["wait"] else None,
            due_at=row["due_at"],
        )


def _marks(values: tuple[Any, ...]) -> str:
    return ",".join("?" * len(values))


# -- jobs ------------------------------------------------------------------------------


def insert_job(
    conn: sqlite3.Connection, *, kind: str, repo: str | None, branch: str | None, lane: str, payload: dict[str, Any]
) -> int:
    now = time.time()
    cursor = conn.execute(
        "INSERT INTO jobs (kind, repo, branch, lane, payload, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (kind, repo, branch, lane, json.dumps(payload), now, now),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def get_job(conn: sqlite3.Connection, job_id: int) -> JobRow | None:
    row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return JobRow.from_row(row) if row else None


def first_job(conn: sqlite3.Connection, statuses: tuple[str, ...], lane: str | None = None) -> JobRow | None:
    """The oldest job in one of `statuses` (in `lane`, when given)."""
    where, params = _where(statuses, lane)
    row = conn.execute(f"SELECT * FROM jobs WHERE {where} ORDER BY id LIMIT 1", params).fetchone()
    return JobRow.from_row(row) if row else None


def job_ids(conn: sqlite3.Connection, status: str, lane: str | None = None) -> list[int]:
    where, params = _where((status,), lane)
    return [row["id"] for row in conn.execute(f"SELECT id FROM jobs WHERE {where} ORDER BY id", params)]


def list_jobs(conn: sqlite3.Connection, status: str | None = None) -> list[JobRow]:
    if status is None:
        rows = conn.execute("SELECT * FROM jobs ORDER BY id").fetchall()
    else:
        rows = conn.execute("SELECT * FROM jobs WHERE status = ? ORDER BY id", (status,)).fetchall()
    return [JobRow.from_row(row) for row in rows]


def count_by_status(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
    return {row["status"]: row["n"] for row in rows}


def start_job(conn: sqlite3.Connection, job_id: int, status: str) -> None:
    """Move a claimed job to `status` and count the try."""
    conn.execute(
        "UPDATE jobs SET status = ?, tries = tries + 1, updated_at = ? WHERE id = ?", (status, time.time(), job_id)
    )


def set_status(conn: sqlite3.Connection, job_id: int, status: str, error: str | None, *, unless: str) -> None:
    """Set a job's status and error, unless it is in status `unless`."""
    conn.execute(
        "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ? AND status != ?",
        (status, error, time.time(), job_id, unless),
    )


def park_job(conn: sqlite3.Connection, job_id: int, status: str, wait: dict[str, Any], due_at: float) -> None:
    """Store a job as waiting: its wait and due time, its status `status` (unless cancelled)."""
    conn.execute(
        "UPDATE jobs SET status = ?, wait = ?, due_at = ?, error = NULL, updated_at = ? WHERE id = ? AND status != ?",
        (status, json.dumps(wait), due_at, time.time(), job_id, "cancelled"),
    )


def move_job(conn: sqlite3.Connection, job_id: int, from_status: str, to_status: str) -> bool:
    """Move one job from `from_status` to `to_status`; whether it was in `from_status`."""
    cursor = conn.execute(
        "UPDATE jobs SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
        (to_status, time.time(), job_id, from_status),
    )
    return cursor.rowcount > 0


def move_jobs(conn: sqlite3.Connection, from_status: str, to_status: str, lane: str | None = None) -> None:
    """Every job in `from_status` (in `lane`, when given) goes to `to_status`."""
    where, params = _where((from_status,), lane)
    conn.execute(f"UPDATE jobs SET status = ?, updated_at = ? WHERE {where}", (to_status, time.time(), *params))


def request_cancel(conn: sqlite3.Connection, lane: str, status: str) -> None:
    """Flag the lane's jobs in `status`: they stop at their next step."""
    conn.execute(
        "UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE lane = ? AND status = ?",
        (time.time(), lane, status),
    )


def _where(statuses: tuple[str, ...], lane: str | None) -> tuple[str, tuple[Any, ...]]:
    where, params = f"status IN ({_marks(statuses)})", tuple(statuses)
    if lane is None:
        return where, params
    return f"lane = ? AND {where}", (lane, *params)


# -- deliveries: what was already acted on ---------------------------------------------


def seen_keys(conn: sqlite3.Connection, keys: Iterable[str]) -> list[str]:
    """Those of `keys` already recorded."""
    return [key for key in keys if conn.execute("SELECT 1 FROM deliveries WHERE delivery_id = ?", (key,)).fetchone()]


def remember(conn: sqlite3.Connection, keys: Iterable[str], job_id: int | None, outcome: str) -> None:
    """Record `keys` with what became of them; a key already recorded keeps its first record."""
    now = time.time()
    conn.executemany(
        "INSERT OR IGNORE INTO deliveries (delivery_id, job_id, outcome, received_at) VALUES (?, ?, ?, ?)",
        [(key, job_id, outcome, now) for key in keys],
    )


# -- the inbox: deliveries received, not yet admitted to the queue ------------------------


@dataclass(frozen=True)
class InboxRow:
    id: int
    kind: str
    payload: str  # JSON, as received


def add_to_inbox(conn: sqlite3.Connection, rows: Iterable[tuple[str, str]]) -> None:
    """Append `(kind, payload JSON)` rows: one insert each into a table with no other index."""
    now = time.time()
    conn.executemany(
        "INSERT INTO inbox (kind, payload, received_at) VALUES (?, ?, ?)", [(kind, data, now) for kind, data in rows]
    )


def oldest_in_inbox(conn: sqlite3.Connection, limit: int) -> list[InboxRow]:
    rows = conn.execute("SELECT id, kind, payload FROM inbox ORDER BY id LIMIT ?", (limit,)).fetchall()
    return [InboxRow(row["id"], row["kind"], row["payload"]) for row in rows]


def drop_from_inbox(conn: sqlite3.Connection, up_to: int) -> None:
    """Remove the rows up to id `up_to`, those just admitted."""
    conn.execute("DELETE FROM inbox WHERE id <= ?", (up_to,))


def inbox_size(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM inbox").fetchone()[0])


# -- steps: what a job already did -----------------------------------------------------


def save_step(conn: sqlite3.Connection, job_id: int, step: str, data: Any) -> None:
    conn.execute(
        "INSERT OR REPLACE INTO job_steps (job_id, step, data, recorded_at) VALUES (?, ?, ?, ?)",
        (job_id, step, json.dumps(data), time.time()),
    )


def load_steps(conn: sqlite3.Connection, job_id: int) -> dict[str, Any]:
    """A job's steps in the order they were recorded."""
    rows = conn.execute(
        "SELECT step, data FROM job_steps WHERE job_id = ? ORDER BY recorded_at, rowid", (job_id,)
    ).fetchall()
    return {row["step"]: json.loads(row["data"]) for row in rows}


# -- the attempt budget of a branch ------------------------------------------------------


def attempts(conn: sqlite3.Connection, repo: str, branch: str) -> int:
    row = conn.execute("SELECT attempts FROM branch_attempts WHERE repo = ? AND branch = ?", (repo, branch)).fetchone()
    return int(row["attempts"]) if row else 0


def add_attempt(conn: sqlite3.Connection, repo: str, branch: str) -> None:
    conn.execute(
        "INSERT INTO branch_attempts (repo, branch, attempts, updated_at) VALUES (?, ?, 1, ?) "
        "ON CONFLICT (repo, branch) DO UPDATE SET attempts = attempts + 1, updated_at = excluded.updated_at",
        (repo, branch, time.time()),
    )


def reset_attempts(conn: sqlite3.Connection, repo: str, branch: str) -> None:
    conn.execute("DELETE FROM branch_attempts WHERE repo = ? AND branch = ?", (repo, branch))
