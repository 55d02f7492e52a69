"""Workers: claim jobs, run them, survive a failing one, leave a job cut off for recovery."""

from __future__ import annotations

import asyncio

import pytest

from bot.app import queue as queue_module
from bot.app.jobs import FixJob
from bot.app.queue import Queue
from bot.app.workers import start_workers
from tests.support.waiting import until


def fix(branch: str) -> FixJob:
    return FixJob(
        repo="team/exp",
        branch=branch,
        clone_url="https://github.com/team/exp.git",
        installation_id=1,
        delivery_id=branch,
    )


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state" / "state.db"


async def test_workers_run_jobs_and_survive_exceptions(db):
    q = Queue(db)
    seen = []

    async def execute(job):
        seen.append(job.branch)
        if job.branch == "boom":
            raise RuntimeError("launcher exploded")

    workers = start_workers(q, execute, n=2)
    try:
        ids = [q.enqueue(fix(b)).job_id for b in ("boom", "ok-1", "ok-2")]
        await until(lambda: all(q.get(i).status in ("done", "failed") for i in ids), what="the jobs")
    finally:
        await workers.stop()
    assert sorted(seen) == ["boom", "ok-1", "ok-2"]
    assert q.get(ids[0]).status == "failed" and "launcher exploded" in q.get(ids[0]).error
    assert [q.get(i).status for i in ids[1:]] == ["done", "done"]
    assert all(not t.done() or t.cancelled() for t in workers.tasks)


async def test_stopping_mid_job_leaves_it_for_recovery(db):
    q = Queue(db)
    started = asyncio.Event()

    async def slow(job):
        started.set()
        await asyncio.sleep(60)

    workers = start_workers(q, slow, n=1)
    job_id = q.enqueue(fix("exp-a")).job_id
    await asyncio.wait_for(started.wait(), 5)
    await workers.stop()
    assert q.get(job_id).status == "running"

    done = asyncio.Event()

    async def quick(job):
        done.set()

    workers = start_workers(Queue(db), quick, n=1)  # start_workers recovers first
    try:
        await asyncio.wait_for(done.wait(), 5)
    finally:
        await workers.stop()


class SlowPolling(Queue):
    """A queue whose idle workers poll only every minute: what they do sooner, a wake-up caused."""

    async def wait(self, timeout: float = 60.0) -> None:
        await super().wait(timeout)


async def test_a_backlog_in_the_inbox_is_admitted_batch_after_batch_without_waiting_for_a_poll(db):
    q = SlowPolling(db)
    q.enqueue(fix("old"))  # acted on before: its redeliveries are duplicates
    q.finish(q.claim().id)
    seen = []

    async def execute(job):
        seen.append(job.branch)

    workers = start_workers(q, execute, n=1, comment_workers=0)
    try:
        await asyncio.sleep(0.1)  # the worker found nothing and waits
        q.receive_many([fix("old")] * (3 * queue_module.ADMIT_BATCH) + [fix("new")])
        await until(lambda: seen == ["new"], timeout=10, what="the new job (without a minute-long poll)")
    finally:
        await workers.stop()
    assert q.received() == 0
