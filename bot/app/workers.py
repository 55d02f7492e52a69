"""Worker tasks: claim a job from the queue, run it, record how it ended.

`n` workers take any job, oldest first; one more serves the comment lane only, so a
`/fix-and-relaunch` gets its 👀 and its answer while long fix jobs hold the others.

A fix job that reaches a wait (its relaunched run queued, or short of its steps) is parked
(`Parked`): stored as waiting, its worker free for the next job; the watcher queues it again
when its run is ready. A worker is busy only while a job does work.

Stopping (`Workers.stop`): no worker claims another job; a fix job's pipeline stops at its next
step boundary and its job goes back to the queue (Interrupted); what is still running when the
grace period ends is cancelled, stays running in the queue, and `recover()` requeues it at the
next start. Either way the journal lets it resume without doing a step twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from bot.app.jobs import COMMENTS_LANE, Job
from bot.app.queue import Queue
from bot.core.errors import BadInput
from bot.loop.pipeline import Interrupted
from bot.loop.waits import Parked

log = logging.getLogger(__name__)

Execute = Callable[[Job], Awaitable[None]]
STOP_GRACE_S = 6.0  # a host kills 10 s after SIGTERM; the HTTP side and the exit need the rest
WORKERS_VAR = "FIX_AND_RELAUNCH_WORKERS"
DEFAULT_WORKERS = 2
MAX_WORKERS = 64  # each busy worker is a pipeline thread doing git, diagnosis or a launch


def workers_from_env(environ: Mapping[str, str] | None = None) -> int:
    """How many fix workers `serve` runs: FIX_AND_RELAUNCH_WORKERS, else 2. Checked at start-up:
    anything but a whole number from 1 to MAX_WORKERS is refused (BadInput), never guessed."""
    raw = (os.environ if environ is None else environ).get(WORKERS_VAR, "").strip()
    if not raw:
        return DEFAULT_WORKERS
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_WORKERS:
        raise BadInput(f"{WORKERS_VAR} must be a whole number from 1 to {MAX_WORKERS}, not {raw!r}")
    return int(raw)


@dataclass
class Workers:
    """The running worker tasks; `busy` counts jobs in progress; `stopping` is seen by every job."""

    queue: Queue
    general: int = 0  # how many of the tasks take any job (the others serve the comment lane)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    busy: int = 0
    peak_busy: int = 0  # the most jobs in progress at once since start
    stopping: threading.Event = field(default_factory=threading.Event)

    def __len__(self) -> int:
        return len(self.tasks)

    async def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Ask every job to stop at its next step boundary, wait up to `grace_s`, cancel the rest."""
        self.stopping.set()
        self.queue.wake()  # idle workers see the flag now, not at their next poll
        if self.tasks:
            _, pending = await asyncio.wait(self.tasks, timeout=grace_s)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks.clear()


def start_workers(
    queue: Queue,
    execute: Execute,
    n: int = 2,
    *,
    recover: bool = True,
    stopping: threading.Event | None = None,
    comment_workers: int = 1,
) -> Workers:
    """Start `n` asyncio tasks that claim any job, and `comment_workers` that claim comment jobs only."""
    if recover:
        queue.recover()
    workers = Workers(queue, general=n, stopping=stopping or threading.Event())
    lanes: list[str | None] = [None] * n + [COMMENTS_LANE] * comment_workers
    workers.tasks = [
        asyncio.create_task(_work(queue, execute, workers, lane), name=f"worker-{i}") for i, lane in enumerate(lanes)
    ]
    return workers


async def _work(queue: Queue, execute: Execute, workers: Workers, lane: str | None) -> None:
    while not workers.stopping.is_set():
        job = queue.claim(lane)
        if job is None:
            await queue.wait()
            continue
        workers.busy += 1
        workers.peak_busy = max(workers.peak_busy, workers.busy)
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
        raise  # shutting down: the job stays running and is requeued at the next start
    except Parked as parked:
        queue.park(job.id, parked.wait)
        log.info("job %d %s; parked, its worker free", job.id, parked)
    except Interrupted as stopped:
        queue.requeue(job.id, f"interrupted: {stopped}")
        log.info("job %d %s; back in the queue, to resume at the next start", job.id, stopped)
    except Exception as exc:
        log.exception("job %d failed", job.id)
        queue.fail(job.id, f"{type(exc).__name__}: {exc}")
    else:
        queue.finish(job.id)
        log.info("job %d done", job.id)
