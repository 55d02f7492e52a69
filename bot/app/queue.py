"""The persistent job queue, in the state database (`bot.store.db`, tables in `bot.store.jobs`).

A GitHub webhook only records the delivery in the inbox (`receive_many`: a row in a table with
no index, the cheapest durable write); a worker admits the inbox into the queue when it claims
(`claim`: dedupe and lanes are decided there, as `enqueue` decides them), then runs the job it
took. The server's acknowledgement thus costs one small commit, and while every worker is stuck
(GitHub down) the deliveries wait in the inbox, never lost. Other callers (the W&B webhook,
a comment job queuing its fix) `enqueue` directly. The queue guarantees:

- one active job per lane (a fix job's repo+branch: queued or running; a W&B project: one
  alert waiting): `enqueue` answers BUSY otherwise; comment jobs share a lane but never wait;
- a GitHub delivery id, a PR comment or a W&B run path is acted on once: `enqueue` answers
  DUPLICATE (the delivery id is not covered by the signature, so a replayed comment with a
  new delivery id is caught by its comment id); a job that another job queues (the fix job of
  an authorised comment) is deduped by that job, so a rerun of it queues nothing twice;
- a fix job at a wait (the relaunched run queued or short of its steps) is parked (`park`,
  status WAITING, holding its lane) and woken by the watcher (`wake_waiting`); a restart
  leaves it waiting;
- a job left running by a stopped process is requeued by `recover()`, and the steps it
  recorded (`record_step`) are still there, so the pipeline resumes without pushing or
  launching twice;
- the attempt budget of a branch persists across triggers (`attempts_used`, `add_attempt`).

The event loop and the pipeline's threads each use their own connection; every statement
is short, so calling the queue from the loop costs microseconds.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from bot.app.jobs import (
    ACTIVE,
    AlertJob,
    CommentJob,
    FixJob,
    Job,
    JobStatus,
    Payload,
    TextEnum,
    branch_lane,
    payload_from_json,
)
from bot.core.settings import Settings
from bot.loop.waits import Wait
from bot.store import jobs as tables
from bot.store.db import DB_NAME, Database

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0  # also picks up jobs another process enqueued
BUSY_TIMEOUT_MS = 10_000
SKIPPED = "skipped"  # the delivery outcome of a W&B run that will never be fixed
ADMIT_BATCH = 8  # inbox rows a claim admits at most: ~0.5 ms of the loop, so a backlog never stalls it
RECEIVED = "received"  # `depth`'s name for the deliveries in the inbox


class EnqueueOutcome(TextEnum):
    QUEUED = "queued"
    DUPLICATE = "duplicate"
    BUSY = "busy"


@dataclass(frozen=True)
class Enqueued:
    """What `enqueue` did."""

    outcome: EnqueueOutcome
    job_id: int | None = None
    active: Job | None = None  # for BUSY: the job already queued or running


class Admitted(NamedTuple):
    """A delivery taken from the inbox, and what `enqueue` did with it."""

    payload: Payload
    result: Enqueued


def run_key(run_path: str) -> str:
    """The dedupe key of a W&B run, kept in `deliveries` beside GitHub delivery ids."""
    return f"wandb-run:{run_path}"


def comment_key(comment_id: int | str) -> str:
    """The dedupe key of a `/fix-and-relaunch` comment: a replay under a new delivery id is caught."""
    return f"comment:{comment_id}"


def source_key(job_id: int) -> str:
    """The dedupe key of the job another job queued: one per source job."""
    return f"job:{job_id}"


def github_keys(payload: Payload) -> list[str]:
    """The dedupe keys of the GitHub delivery behind a job: remembered even when it is not queued."""
    if not isinstance(payload, (FixJob, CommentJob)):
        return []
    keys = [payload.delivery_id] if payload.delivery_id else []
    if payload.comment_id is not None:
        keys.append(comment_key(payload.comment_id))
    return keys


def dedupe_keys(payload: Payload) -> list[str]:
    """Every dedupe key of a job: its GitHub keys and, for a fix job, its W&B run."""
    keys = github_keys(payload)
    if isinstance(payload, FixJob) and payload.run_path:
        keys.append(run_key(payload.run_path))
    return keys


def blocking_statuses(payload: Payload) -> tuple[JobStatus, ...]:
    """A fix job waits for no other job of its branch; an alert only for one not yet started; a
    comment for none."""
    if isinstance(payload, CommentJob):
        return ()
    return (JobStatus.QUEUED,) if isinstance(payload, AlertJob) else ACTIVE


class Queue:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.db = Database(self.path, busy_timeout_ms=BUSY_TIMEOUT_MS)
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Queue:
        return cls(Path(settings.state_dir) / DB_NAME)

    def close(self) -> None:
        self.db.close()

    # -- enqueue, dedupe, one active job per lane -------------------------------------

    def enqueue(self, payload: Payload, *, source: int | None = None) -> Enqueued:
        """Add a job unless its delivery / W&B run was seen or its lane already has one.

        Dedupe keys are the delivery id (X-GitHub-Delivery), the PR comment and, for fix jobs,
        the W&B run; for a job queued by job `source`, that job alone. GitHub keys are
        remembered for BUSY outcomes too, so a redelivery is not answered twice; a W&B run is
        not: the next alert tries it again.
        """
        with self.db.transaction() as conn:
            result = _enqueue(conn, payload, source)
        if result.outcome == EnqueueOutcome.QUEUED:
            self._notify()
        return result

    # -- the inbox: what the webhook records, admitted when a worker claims ----------

    def receive_many(self, payloads: Sequence[Payload]) -> None:
        """Record deliveries in the inbox, in one transaction: the request path's only write, a row
        each in a table with no index. Dedupe and lanes are decided when a worker admits them
        (`claim`), so idle workers are woken now."""
        rows = [(payload.kind.value, orjson.dumps(payload.to_json()).decode()) for payload in payloads]
        with self.db.transaction() as conn:
            tables.add_to_inbox(conn, rows)
        self._notify()

    def admit(self) -> list[Admitted]:
        """Admit what the inbox holds into the queue, oldest first and at most ADMIT_BATCH."""
        with self.db.transaction() as conn:
            admitted, more = _admit(conn)
        self._after_admitting(admitted, more)
        return admitted

    def received(self) -> int:
        """Deliveries in the inbox, not yet admitted."""
        return tables.inbox_size(self.db.connection)

    def seen(self, delivery_id: str | None) -> bool:
        """Whether this GitHub delivery id (or other dedupe key) was already handled."""
        if not delivery_id:
            return False
        return bool(tables.seen_keys(self.db.connection, [delivery_id]))

    def seen_run(self, run_path: str) -> bool:
        return self.seen(run_key(run_path))

    def mark_run(self, run_path: str, outcome: str = SKIPPED) -> None:
        """Remember a W&B run that will never be fixed (e.g. it ran on main), so alerts stop retrying it."""
        with self.db.transaction() as conn:
            tables.remember(conn, [run_key(run_path)], None, outcome)

    # -- claiming and finishing ------------------------------------------------------

    def claim(self, lane: str | None = None) -> Job | None:
        """Admit the inbox (`admit`), then take the oldest queued job (of `lane`, when given) and
        mark it running, in one transaction."""
        claimed = None
        with self.db.transaction() as conn:
            admitted, more = _admit(conn)
            row = tables.first_job(conn, (JobStatus.QUEUED,), lane=lane)
            if row is not None:
                tables.start_job(conn, row.id, JobStatus.RUNNING)
                claimed = tables.get_job(conn, row.id)
        self._after_admitting(admitted, more)
        return _job(claimed) if claimed else None

    def finish(self, job_id: int) -> None:
        self._set_status(job_id, JobStatus.DONE)

    def fail(self, job_id: int, error: str) -> None:
        self._set_status(job_id, JobStatus.FAILED, error)

    def _set_status(self, job_id: int, status: JobStatus, error: str | None = None) -> None:
        # A job cancelled while it ran stays cancelled.
        with self.db.transaction() as conn:
            tables.set_status(conn, job_id, status, error, unless=JobStatus.CANCELLED)

    def requeue(self, job_id: int, note: str) -> None:
        """Put a running job back in the queue (a stop at a step boundary): its steps stay recorded,
        so the next start resumes it; `note` says where it stopped."""
        with self.db.transaction() as conn:
            tables.set_status(conn, job_id, JobStatus.QUEUED, note, unless=JobStatus.CANCELLED)

    def park(self, job_id: int, wait: Wait) -> None:
        """A running job reached a wait: store it as waiting, due at the wait's deadline. No worker
        holds it; the watcher wakes it (`wake_waiting`). Its steps stay recorded."""
        with self.db.transaction() as conn:
            tables.park_job(conn, job_id, JobStatus.WAITING, wait.to_json(), wait.deadline)

    def waiting(self) -> list[Job]:
        """The jobs parked at a wait, oldest first."""
        return self.jobs(JobStatus.WAITING)

    def wake_waiting(self, job_ids: Sequence[int]) -> list[int]:
        """Queue waiting jobs again (their wait is over, or they were cancelled); those it moved."""
        with self.db.transaction() as conn:
            woken = [i for i in job_ids if tables.move_job(conn, i, JobStatus.WAITING, JobStatus.QUEUED)]
        if woken:
            self._notify()
        return woken

    def recover(self) -> list[int]:
        """Requeue the jobs a stopped process left running; call once at start-up. A waiting job
        stays waiting: the watcher wakes it when its run is ready."""
        with self.db.transaction() as conn:
            ids = tables.job_ids(conn, JobStatus.RUNNING)
            tables.move_jobs(conn, JobStatus.RUNNING, JobStatus.QUEUED)
        if ids:
            log.info("requeued %d interrupted job(s): %s", len(ids), ids)
            self._notify()
        return ids

    def cancel_branch(self, repo: str, branch: str) -> list[int]:
        """Drop the branch's queued jobs; ask its running job to stop at its next step. A waiting
        job is queued again, flagged: it resumes only to give up and say so on the PR."""
        lane = branch_lane(repo, branch)
        with self.db.transaction() as conn:
            queued = tables.job_ids(conn, JobStatus.QUEUED, lane)
            tables.move_jobs(conn, JobStatus.QUEUED, JobStatus.CANCELLED, lane)
            tables.request_cancel(conn, lane, JobStatus.RUNNING)
            tables.request_cancel(conn, lane, JobStatus.WAITING)
            tables.move_jobs(conn, JobStatus.WAITING, JobStatus.QUEUED, lane)
        self._notify()
        return queued

    def active_job(self, repo: str, branch: str) -> Job | None:
        """The branch's queued or running fix job, if any."""
        row = tables.first_job(self.db.connection, ACTIVE, lane=branch_lane(repo, branch))
        return _job(row) if row else None

    def cancel_requested(self, job_id: int) -> bool:
        row = tables.get_job(self.db.connection, job_id)
        return row is not None and (row.cancel_requested or row.status == JobStatus.CANCELLED)

    # -- reading ---------------------------------------------------------------------

    def get(self, job_id: int) -> Job | None:
        row = tables.get_job(self.db.connection, job_id)
        return _job(row) if row else None

    def jobs(self, status: JobStatus | str | None = None) -> list[Job]:
        return [_job(row) for row in tables.list_jobs(self.db.connection, status)]

    def depth(self) -> dict[str, int]:
        """The number of jobs in each status, every status named, and of deliveries `received`
        (in the inbox, not admitted yet)."""
        counts = tables.count_by_status(self.db.connection)
        return {RECEIVED: self.received(), **{status.value: counts.get(status.value, 0) for status in JobStatus}}

    # -- steps: what a job already did -----------------------------------------------

    def record_step(self, job_id: int, step: str, data: Any = None) -> None:
        """Remember that `step` finished, with what it produced (JSON-serialisable)."""
        with self.db.transaction() as conn:
            tables.save_step(conn, job_id, step, data)

    def steps(self, job_id: int) -> dict[str, Any]:
        """The finished steps of a job, in the order they were recorded."""
        return tables.load_steps(self.db.connection, job_id)

    # -- attempt budget per branch, across triggers ----------------------------------

    def attempts_used(self, repo: str, branch: str) -> int:
        return tables.attempts(self.db.connection, repo, branch)

    def add_attempt(self, repo: str, branch: str) -> int:
        with self.db.transaction() as conn:
            tables.add_attempt(conn, repo, branch)
            return tables.attempts(conn, repo, branch)

    def reset_attempts(self, repo: str, branch: str) -> None:
        with self.db.transaction() as conn:
            tables.reset_attempts(conn, repo, branch)

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

    def _after_admitting(self, admitted: list[Admitted], more: bool) -> None:
        """Say what became of each admitted delivery; wake the workers when one was queued, or
        when the inbox holds more (their next claims admit it)."""
        for payload, result in admitted:
            log.info("%s", _describe(payload, result))
        if more or any(result.outcome == EnqueueOutcome.QUEUED for _, result in admitted):
            self._notify()

    def wake(self) -> None:
        """Wake the workers waiting in `wait` (e.g. to see that they must stop)."""
        self._notify()

    def _notify(self) -> None:
        loop, event = self._loop, self._wakeup
        if loop is None or event is None or loop.is_closed():
            return
        if _running_loop() is loop:  # the request path: set it here, not through the loop's self-pipe
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


def _enqueue(conn: sqlite3.Connection, payload: Payload, source: int | None) -> Enqueued:
    github, keys = github_keys(payload), dedupe_keys(payload)
    if source is not None:
        github = keys = [source_key(source)]
    if tables.seen_keys(conn, keys):
        return Enqueued(EnqueueOutcome.DUPLICATE)
    blocking = blocking_statuses(payload)
    row = tables.first_job(conn, blocking, lane=payload.lane) if blocking else None
    if row is not None:
        tables.remember(conn, github, row.id, EnqueueOutcome.BUSY)
        return Enqueued(EnqueueOutcome.BUSY, active=_job(row))
    job_id = tables.insert_job(
        conn, kind=payload.kind, repo=payload.repo, branch=payload.branch, lane=payload.lane, payload=payload.to_json()
    )
    tables.remember(conn, keys, job_id, EnqueueOutcome.QUEUED)
    return Enqueued(EnqueueOutcome.QUEUED, job_id=job_id)


def _admit(conn: sqlite3.Connection) -> tuple[list[Admitted], bool]:
    """Move the oldest inbox rows into the queue, as `enqueue` would each in turn (so one row sees
    the ones before it: a redelivery in the same batch is a duplicate); and whether the inbox may
    hold more."""
    rows = tables.oldest_in_inbox(conn, ADMIT_BATCH)
    admitted = []
    for row in rows:
        try:
            payload = payload_from_json(row.kind, orjson.loads(row.payload))
        except (KeyError, TypeError, ValueError) as exc:  # a row this release cannot read: said, not kept
            log.error("inbox row %d (%s) dropped, unreadable: %s: %s", row.id, row.kind, type(exc).__name__, exc)
            continue
        admitted.append(Admitted(payload, _enqueue(conn, payload, None)))
    if rows:
        tables.drop_from_inbox(conn, rows[-1].id)
    return admitted, len(rows) == ADMIT_BATCH


def _describe(payload: Payload, result: Enqueued) -> str:
    """One log line: an admitted delivery and what became of it."""
    delivery = getattr(payload, "delivery_id", None)
    job = f" as job {result.job_id}" if result.job_id is not None else ""
    busy = f" (job {result.active.id} is active)" if result.active is not None else ""
    return f"{payload.kind} for {payload.repo} from delivery {delivery}: {result.outcome}{job}{busy}"


def _job(row: tables.JobRow) -> Job:
    return Job(
        id=row.id,
        status=JobStatus(row.status),
        payload=payload_from_json(row.kind, row.payload),
        tries=row.tries,
        error=row.error,
        wait=Wait.from_json(row.wait) if row.wait else None,
    )
