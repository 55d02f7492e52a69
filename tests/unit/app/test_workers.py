"""Workers: claim jobs, run them, survive a failing one, leave a job cut off for recovery."""

from __future__ import annotations

import asyncio

import pytest

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
