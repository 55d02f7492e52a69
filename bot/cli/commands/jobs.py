"""`jobs list|show|cancel`: the server's job queue, read from (and, to cancel, written to) the
state directory. Safe beside a running server: SQLite serialises the writes."""

from __future__ import annotations

import argparse
import time

from bot.app import job_cancel, job_views
from bot.app.job_views import JobView
from bot.app.jobs import JobStatus
from bot.app.queue import Queue
from bot.cli import output
from bot.core.errors import BadInput, OperationFailed
from bot.core.settings import Settings

COLUMNS = ("id", "kind", "status", "what", "steps", "attempts", "updated")


def run(args: argparse.Namespace, settings: Settings) -> int:
    queue = Queue.from_settings(settings)
    try:
        if args.jobs_command == "list":
            return list_jobs(queue, args, settings)
        if args.jobs_command == "show":
            return show_job(queue, args.id, args.json, settings)
        return cancel_job(queue, args.id)
    finally:
        queue.close()


def list_jobs(queue: Queue, args: argparse.Namespace, settings: Settings) -> int:
    statuses = (JobStatus(args.status),) if args.status else tuple(JobStatus)
    found = job_views.jobs(queue.db.connection, statuses, limit=args.limit)
    if args.json:
        output.print_json([j.to_json() for j in found], settings)
        return 0
    if not found:
        print("no jobs")
        return 0
    now = time.time()
    rows = [summary(j, now) for j in found]
    output.print_text(output.aligned(rows, COLUMNS), settings)
    return 0


def summary(job: JobView, now: float) -> dict[str, object]:
    p = job.payload
    what = f"{job.repo or p.get('entity', '')}" + (f"#{job.branch}" if job.branch else "")
    return {
        "id": job.id,
        "kind": job.kind,
        "status": job.status.value + (" (stopping)" if job.cancel_requested and job.status == "running" else ""),
        "what": what,
        "steps": len(job.steps),
        "attempts": job.attempts,
        "updated": output.human_time(job.updated_at, now),
    }


def show_job(queue: Queue, job_id: int, as_json: bool, settings: Settings) -> int:
    found = job_views.job(queue.db.connection, job_id)
    if found is None:
        raise BadInput(f"no job {job_id} in {settings.state_dir}")
    if as_json:
        output.print_json(found.to_json(), settings)
        return 0
    lines = [f"job {found.id}: {found.kind}, {found.status.value}, {found.tries} tries"]
    lines += [f"  {key}: {value}" for key, value in found.payload.items() if value not in (None, "", False)]
    if found.error:
        lines.append(f"  error: {found.error}")
    lines.append("steps:" if found.steps else "steps: none yet")
    lines += [f"  {time.strftime('%H:%M:%S', time.localtime(s.recorded_at))}  {s.name}" for s in found.steps]
    llm = found.llm
    if llm.input_tokens or llm.output_tokens:
        lines.append(f"LLM: {llm.input_tokens} in, {llm.output_tokens} out, ${llm.cost_usd:.4f}")
    output.print_text("\n".join(lines), settings)
    return 0


def cancel_job(queue: Queue, job_id: int) -> int:
    outcome = job_cancel.cancel(queue, job_id)
    if outcome is job_cancel.UNKNOWN:
        raise BadInput(f"no job {job_id}")
    if outcome is job_cancel.FINISHED:
        raise OperationFailed(f"job {job_id} already finished; nothing to cancel")
    print(f"job {job_id}: {outcome}")
    return 0
