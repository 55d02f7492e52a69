"""The persistent job queue: SQLite tables `jobs`, `deliveries`, `job_steps`, `branch_attempts`.

They live in `settings.state_dir / "state.db"`, next to the run records. A webhook handler
only enqueues; workers claim jobs and run the pipeline. The queue guarantees:

- one active (queued or running) job per repo+branch: `enqueue` answers "busy" otherwise;
- a GitHub delivery id, a PR comment or a W&B run path is acted on once: `enqueue` answers
  "duplicate" (the delivery id is not covered by the signature, so a replayed comment with a
  new delivery id is caught by its comment id);
- a job left 'running' by a stopped process is requeued by `recover()`, and the steps it
  recorded (`record_step`) are still there, so the pipeline resumes without pushing or
  launching twice;
- the attempt budget of a branch persists across triggers (`attempts_used`, `add_attempt`).

One connection, shared by the event loop and the pipeline thread, behind a lock; every
statement is short, so calling it from the loop costs microseconds.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable

from bot.store.runs import DB_NAME, connect, prepare

log = logging.getLogger(__name__)

ACTIVE = ("queued", "running")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
POLL_SECONDS = 2.0  # also picks up jobs another process enqueued

SCHEMA = """
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


@dataclass(frozen=True)
class Job:
    id: int
    kind: str
    repo: str | None
    branch: str | None
    status: str
    payload: dict[str, Any]
    tries: int = 0
    error: str | None = None

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)


@dataclass(frozen=True)
class Enqueued:
    """What `enqueue` did: outcome is "queued", "duplicate" or "busy"."""

    outcome: str
    job_id: int | None = None
    active: Job | None = None  # for "busy": the job already queued or running


def run_key(run_path: str) -> str:
    """The dedupe key of a W&B run, kept in `deliveries` beside GitHub delivery ids."""
    return f"wandb-run:{run_path}"


def comment_key(comment_id: int | str) -> str:
    """The dedupe key of a `/fix-and-relaunch` comment: a replay under a new delivery id is caught."""
    return f"comment:{comment_id}"


def lane_of(payload: dict[str, Any]) -> str:
    """The serialisation lane: one active job per lane."""
    if payload.get("kind") == "wandb_alert":
        return f"wandb:{payload.get('entity')}/{payload.get('project')}"
    return f"branch:{payload.get('repo')}#{payload.get('branch')}"


class Queue:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = connect(self.path, busy_timeout_ms=10_000)
        prepare(self._db, self.path, lambda: self._db.executescript(SCHEMA))
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings) -> "Queue":
        return cls(Path(settings.state_dir) / DB_NAME)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- enqueue, dedupe, one active job per branch -------------------------------------

    def enqueue(self, payload: dict[str, Any]) -> Enqueued:
        """Add a job unless its delivery / W&B run was seen or its branch already has one.

        `payload` must carry `kind`; fix jobs carry `repo` and `branch`. Dedupe keys are
        `delivery_id` (X-GitHub-Delivery), `comment_id` (the PR comment) and, for fix jobs,
        `run_path` (the W&B run). GitHub keys are remembered for "busy" outcomes too, so a
        redelivery is not answered twice; a W&B run is not: the next alert tries it again.
        """
        github_keys = [k for k in (payload.get("delivery_id"),) if k]
        if payload.get("comment_id") is not None:
            github_keys.append(comment_key(payload["comment_id"]))
        keys = list(github_keys)
        if payload.get("run_path") and payload.get("kind") == "fix":
            keys.append(run_key(payload["run_path"]))
        lane = lane_of(payload)
        now = time.time()
        with self._transaction() as db:
            seen = [k for k in keys if db.execute("SELECT 1 FROM deliveries WHERE delivery_id = ?", (k,)).fetchone()]
            if seen:
                return Enqueued("duplicate")
            statuses = ("queued",) if payload.get("kind") == "wandb_alert" else ACTIVE
            row = db.execute(
                f"SELECT * FROM jobs WHERE lane = ? AND status IN ({','.join('?' * len(statuses))}) ORDER BY id LIMIT 1",
                (lane, *statuses),
            ).fetchone()
            if row is not None:
                self._remember(db, github_keys, row["id"], "busy", now)
                return Enqueued("busy", active=_job(row))
            cursor = db.execute(
                "INSERT INTO jobs (kind, repo, branch, lane, payload, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (payload["kind"], payload.get("repo"), payload.get("branch"), lane, json.dumps(payload), now, now),
            )
            job_id = cursor.lastrowid
            self._remember(db, keys, job_id, "queued", now)
        self._notify()
        return Enqueued("queued", job_id=job_id)

    def seen(self, delivery_id: str | None) -> bool:
        """Whether this GitHub delivery id was already handled."""
        return bool(delivery_id) and self._one("SELECT 1 FROM deliveries WHERE delivery_id = ?", (delivery_id,)) is not None

    def seen_run(self, run_path: str) -> bool:
        return self.seen(run_key(run_path))

    def mark_run(self, run_path: str, outcome: str = "skipped") -> None:
        """Remember a W&B run that will never be fixed (e.g. it ran on main), so alerts stop retrying it."""
        with self._transaction() as db:
            self._remember(db, [run_key(run_path)], None, outcome, time.time())

    @staticmethod
    def _remember(db: sqlite3.Connection, keys: list[str], job_id: int | None, outcome: str, now: float) -> None:
        db.executemany(
            "INSERT OR IGNORE INTO deliveries (delivery_id, job_id, outcome, received_at) VALUES (?, ?, ?, ?)",
            [(k, job_id, outcome, now) for k in keys],
        )

    # -- claiming and finishing ------------------------------------------------------

    def claim(self) -> Job | None:
        """Take the oldest queued job and mark it running."""
        with self._transaction() as db:
            row = db.execute("SELECT * FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', tries = tries + 1, updated_at = ? WHERE id = ?",
                (time.time(), row["id"]),
            )
            return _job(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def finish(self, job_id: int) -> None:
        self._set_status(job_id, "done")

    def fail(self, job_id: int, error: str) -> None:
        self._set_status(job_id, "failed", error)

    def _set_status(self, job_id: int, status: str, error: str | None = None) -> None:
        # A job cancelled while it ran stays cancelled.
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, error = ?, updated_at = ? WHERE id = ? AND status != 'cancelled'",
                (status, error, time.time(), job_id),
            )

    def recover(self) -> list[int]:
        """Requeue the jobs a stopped process left running; call once at start-up."""
        with self._transaction() as db:
            ids = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE status = 'running' ORDER BY id")]
            db.execute("UPDATE jobs SET status = 'queued', updated_at = ? WHERE status = 'running'", (time.time(),))
        if ids:
            log.info("requeued %d interrupted job(s): %s", len(ids), ids)
            self._notify()
        return ids

    def cancel_branch(self, repo: str, branch: str) -> list[int]:
        """Drop the branch's queued jobs; ask its running job to stop at its next step."""
        lane = lane_of({"kind": "fix", "repo": repo, "branch": branch})
        with self._transaction() as db:
            queued = [r["id"] for r in db.execute("SELECT id FROM jobs WHERE lane = ? AND status = 'queued'", (lane,))]
            now = time.time()
            db.execute("UPDATE jobs SET status = 'cancelled', updated_at = ? WHERE lane = ? AND status = 'queued'", (now, lane))
            db.execute("UPDATE jobs SET cancel_requested = 1, updated_at = ? WHERE lane = ? AND status = 'running'", (now, lane))
        return queued

    def active_job(self, repo: str, branch: str) -> Job | None:
        """The branch's queued or running fix job, if any."""
        lane = lane_of({"kind": "fix", "repo": repo, "branch": branch})
        row = self._one(f"SELECT * FROM jobs WHERE lane = ? AND status IN ({','.join('?' * len(ACTIVE))}) "
                        "ORDER BY id LIMIT 1", (lane, *ACTIVE))
        return _job(row) if row else None

    def cancel_requested(self, job_id: int) -> bool:
        row = self._one("SELECT cancel_requested, status FROM jobs WHERE id = ?", (job_id,))
        return row is not None and (bool(row["cancel_requested"]) or row["status"] == "cancelled")

    # -- reading ---------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        return _job(row) if row else None

    def jobs(self, status: str | None = None) -> list[Job]:
        with self._lock:
            if status is None:
                rows = self._db.execute("SELECT * FROM jobs ORDER BY id").fetchall()
            else:
                rows = self._db.execute("SELECT * FROM jobs WHERE status = ? ORDER BY id", (status,)).fetchall()
        return [_job(r) for r in rows]

    def depth(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status").fetchall()
        counts = {status: 0 for status in STATUSES}
        counts.update({r["status"]: r["n"] for r in rows})
        return counts

    # -- steps: what a job already did -----------------------------------------------

    def record_step(self, job_id: int, step: str, data: Any = None) -> None:
        """Remember that `step` finished, with what it produced (JSON-serialisable)."""
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO job_steps (job_id, step, data, recorded_at) VALUES (?, ?, ?, ?)",
                (job_id, step, json.dumps(data), time.time()),
            )

    def steps(self, job_id: int) -> dict[str, Any]:
        """The finished steps of a job, in the order they were recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT step, data FROM job_steps WHERE job_id = ? ORDER BY recorded_at, rowid", (job_id,)
            ).fetchall()
        return {r["step"]: json.loads(r["data"]) for r in rows}

    # -- attempt budget per branch, across triggers ----------------------------------

    def attempts_used(self, repo: str, branch: str) -> int:
        row = self._one("SELECT attempts FROM branch_attempts WHERE repo = ? AND branch = ?", (repo, branch))
        return row["attempts"] if row else 0

    def add_attempt(self, repo: str, branch: str) -> int:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO branch_attempts (repo, branch, attempts, updated_at) VALUES (?, ?, 1, ?) "
                "ON CONFLICT (repo, branch) DO UPDATE SET attempts = attempts + 1, updated_at = excluded.updated_at",
                (repo, branch, time.time()),
            )
            return db.execute(
                "SELECT attempts FROM branch_attempts WHERE repo = ? AND branch = ?", (repo, branch)
            ).fetchone()["attempts"]

    def reset_attempts(self, repo: str, branch: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM branch_attempts WHERE repo = ? AND branch = ?", (repo, branch))

    # -- waiting for work --------------------------------------------------------------

    async def wait(self, timeout: float = POLL_SECONDS) -> None:
        """Sleep until a job is enqueued in this process, or `timeout` passes."""
        if self._wakeup is None or self._loop is not asyncio.get_running_loop():
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout)
        except asyncio.TimeoutError:
            pass
        self._wakeup.clear()

    def _notify(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    # -- plumbing ----------------------------------------------------------------------

    def _one(self, sql: str, params: tuple) -> sqlite3.Row | None:
        with self._lock:
            return self._db.execute(sql, params).fetchone()

    def _transaction(self) -> "_Transaction":
        return _Transaction(self)


class _Transaction:
    def __init__(self, queue: Queue):
        self.queue = queue

    def __enter__(self) -> sqlite3.Connection:
        self.queue._lock.acquire()
        try:
            self.queue._db.execute("BEGIN IMMEDIATE")
        except BaseException:
            self.queue._lock.release()
            raise
        return self.queue._db

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self.queue._db.execute("ROLLBACK" if exc_type else "COMMIT")
        finally:
            self.queue._lock.release()


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], kind=row["kind"], repo=row["repo"], branch=row["branch"], status=row["status"],
        payload=json.loads(row["payload"]), tries=row["tries"], error=row["error"],
    )


# -- workers -----------------------------------------------------------------------------

Execute = Callable[[Job], Awaitable[None]]


@dataclass
class Workers:
    """The running worker tasks; `busy` counts jobs in progress."""

    tasks: list[asyncio.Task] = field(default_factory=list)
    busy: int = 0

    def __len__(self) -> int:
        return len(self.tasks)

    async def stop(self) -> None:
        """Cancel the workers. A job cut off stays 'running' and `recover()` requeues it."""
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


def start_workers(queue: Queue, execute: Execute, n: int = 2, *, recover: bool = True) -> Workers:
    """Start `n` asyncio tasks that claim jobs and run `execute(job)` on each."""
    if recover:
        queue.recover()
    workers = Workers()
    workers.tasks = [asyncio.create_task(_work(queue, execute, workers), name=f"worker-{i}") for i in range(n)]
    return workers


async def _work(queue: Queue, execute: Execute, workers: Workers) -> None:
    while True:
        job = queue.claim()
        if job is None:
            await queue.wait()
            continue
        workers.busy += 1
        try:
            await run_job(queue, execute, job)
        finally:
            workers.busy -= 1


async def run_job(queue: Queue, execute: Execute, job: Job) -> None:
    """Run one claimed job and record how it ended; an exception fails the job, not the worker."""
    log.info("job %d (%s %s %s) started, try %d", job.id, job.kind, job.repo, job.branch, job.tries)
    try:
        await execute(job)
    except asyncio.CancelledError:
        raise  # shutting down: the job stays 'running' and is requeued at the next start
    except Exception as exc:
        log.exception("job %d failed", job.id)
        queue.fail(job.id, f"{type(exc).__name__}: {exc}")
    else:
        queue.finish(job.id)
        log.info("job %d done", job.id)

