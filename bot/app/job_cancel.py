"""Cancelling one job by id, for the `jobs cancel` command."""

from __future__ import annotations

from bot.app.jobs import JobStatus
from bot.app.queue import Queue
from bot.store import jobs as tables


class CancelOutcome(str):
    """What `cancel` did, as the words the command prints."""


CANCELLED = CancelOutcome("cancelled")  # it was queued: it will never run
STOPPING = CancelOutcome("asked to stop")  # it runs: it stops at its next step boundary
FINISHED = CancelOutcome("already finished")
UNKNOWN = CancelOutcome("no such job")


def cancel(queue: Queue, job_id: int) -> CancelOutcome:
    """Cancel a queued job, or ask a running or waiting one to stop (a running fix job stops at its
    next step; a waiting one is woken to stop), in one write transaction: the job cannot be claimed
    in between."""
    with queue.db.transaction() as conn:
        row = tables.get_job(conn, job_id)
        if row is None:
            return UNKNOWN
        if row.status == JobStatus.QUEUED:
            tables.set_status(
                conn, job_id, JobStatus.CANCELLED, "cancelled by the operator", unless=JobStatus.CANCELLED
            )
            return CANCELLED
        if row.status == JobStatus.RUNNING:
            # A lane holds one running fix job; the flag is what the pipeline polls.
            tables.request_cancel(conn, row.lane, JobStatus.RUNNING)
            return STOPPING
        if row.status == JobStatus.WAITING:
            # Parked at a wait: queued again, flagged, it resumes only to stop and say so.
            tables.request_cancel(conn, row.lane, JobStatus.WAITING)
            tables.move_job(conn, job_id, JobStatus.WAITING, JobStatus.QUEUED)
            return STOPPING
        return FINISHED
