"""Worker tasks: claim a job from the queue, run it, record how it ended."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bot.app.jobs import Job
from bot.app.queue import Queue

log = logging.getLogger(__name__)

Execute = Callable[[Job], Awaitable[None]]


@dataclass
class Workers:
    """The running worker tasks; `busy` counts jobs in progress."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    busy: int = 0

    def __len__(self) -> int:
        return len(self.tasks)

    async def stop(self) -> None:
        """Cancel the workers. A job cut off stays running and `recover()` requeues it."""
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
        raise  # shutting down: the job stays running and is requeued at the next start
    except Exception as exc:
        log.exception("job %d failed", job.id)
        queue.fail(job.id, f"{type(exc).__name__}: {exc}")
    else:
        queue.finish(job.id)
        log.info("job %d done", job.id)
