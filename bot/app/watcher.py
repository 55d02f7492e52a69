"""The watcher: one task that looks at every waiting job's run and wakes the job when its wait
is over.

A fix job parked at its wait (bot.loop.waits; status WAITING, no worker held) is looked at on
every poll, all of them at once (bot.loop.watch: one question per launch backend, one W&B
listing per project), and queued again once its run ended, logged its target steps, or its
deadline passed, or once it was cancelled. A restart finds the waiting jobs in the store and
watches them again: nothing is launched twice, the job's journal holds its launch.

The look runs in a thread (SQLite, status files, `scontrol`), so the event loop keeps
answering webhooks meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.app.executor import in_daemon_thread
from bot.app.jobs import Job
from bot.app.queue import Queue
from bot.core.settings import Settings
from bot.loop.watch import RunWatch, Watched

log = logging.getLogger(__name__)

WATCH_POLL_S = 2.0  # how often every waiting run is looked at


class Watcher:
    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        *,
        poll_s: float = WATCH_POLL_S,
        clock: Callable[[], float] = time.time,
    ):
        self.settings = settings
        self.queue = queue
        self.poll_s = poll_s
        self.clock = clock
        self.eyes = RunWatch(settings)
        self.looks = 0  # how many polls looked at waiting runs (for tests and benchmarks)

    def sweep(self) -> list[int]:
        """One look at every waiting job; the ids of those it queued again. Blocking."""
        waiting = self.queue.waiting()
        if not waiting:
            return []
        cancelled = [job.id for job in waiting if self.queue.cancel_requested(job.id)]
        watched = [w for job in waiting if job.id not in cancelled and (w := self._watched(job)) is not None]
        unreadable = [job.id for job in waiting if job.id not in cancelled and job.wait is None]
        self.looks += 1
        over = self.eyes.over(watched, self.clock()) if watched else []
        woken = self.queue.wake_waiting([*cancelled, *unreadable, *over])
        if woken:
            log.info("woke %d waiting job(s): %s", len(woken), woken)
        return woken

    def _watched(self, job: Job) -> Watched | None:
        if job.wait is None or job.repo is None or job.branch is None:
            return None
        return Watched(job.id, Path(self.settings.state_dir) / "repos" / job.repo, job.branch, job.wait)

    async def run(self, stopping: threading.Event) -> None:
        """Sweep every `poll_s` until `stopping` is set; a sweep that fails is logged and retried."""
        while not stopping.is_set():
            try:
                await in_daemon_thread(self.sweep)  # a sweep in flight never holds the exit
            except Exception:
                log.exception("the watcher's sweep failed; trying again at the next poll")
            await _sleep_unless(stopping, self.poll_s)


async def _sleep_unless(stopping: threading.Event, seconds: float) -> None:
    step = 0.2
    waited = 0.0
    while waited < seconds and not stopping.is_set():
        await asyncio.sleep(min(step, seconds - waited))
        waited += step
