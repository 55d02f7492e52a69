"""Jobs parked at a wait: stored as waiting (no worker busy), kept across a restart, woken by the
watcher when their run is ready, and `FIX_AND_RELAUNCH_WORKERS` checked at start-up."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time

import pytest

from bot.app.jobs import FixJob, JobStatus
from bot.app.queue import EnqueueOutcome, Queue
from bot.app.watcher import Watcher
from bot.app.workers import start_workers, workers_from_env
from bot.core.errors import BadInput
from bot.core.settings import Settings
from bot.loop.waits import Parked, Wait
from bot.loop.watch import RunWatch, Watched
from bot.store.runs import StateStore
from tests.support.waiting import until


def fix(branch: str) -> FixJob:
    return FixJob(repo="team/exp", branch=branch, clone_url="https://x/team/exp.git", installation_id=1)


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state" / "state.db"


def parked_job(q: Queue, branch: str, wait: Wait) -> int:
    job_id = q.enqueue(fix(branch)).job_id
    assert q.claim().id == job_id
    q.park(job_id, wait)
    return job_id


def test_a_parked_job_waits_in_the_store_holds_its_lane_and_survives_a_restart(db):
    q = Queue(db)
    wait = Wait("r-1", 20, time.time() + 60, 1.0)
    job_id = parked_job(q, "exp-a", wait)
    q.record_step(job_id, "1:launch", "r-1")

    again = Queue(db)  # a new process
    assert again.recover() == [], "a waiting job is not requeued: it stays waiting"
    [job] = again.waiting()
    assert (job.id, job.status, job.wait) == (job_id, JobStatus.WAITING, wait)
    assert again.steps(job_id) == {"1:launch": "r-1"}
    assert again.enqueue(fix("exp-a")).outcome == EnqueueOutcome.BUSY, "one job per branch, waiting or not"
    assert again.claim() is None, "no worker takes a waiting job"
    assert again.depth()["waiting"] == 1


def test_a_woken_job_is_claimed_with_its_wait(db):
    q = Queue(db)
    wait = Wait("r-1", 20, time.time() + 60)
    job_id = parked_job(q, "exp-a", wait)
    assert q.wake_waiting([job_id]) == [job_id] and q.wake_waiting([job_id]) == []
    job = q.claim()
    assert job.id == job_id and job.wait == wait and job.tries == 2


def test_cancelling_a_branch_wakes_its_waiting_job_flagged(db):
    q = Queue(db)
    job_id = parked_job(q, "exp-a", Wait("r-1", 20, time.time() + 60))
    q.cancel_branch("team/exp", "exp-a")
    assert q.get(job_id).status == JobStatus.QUEUED and q.cancel_requested(job_id)


async def test_a_parked_job_frees_its_worker_for_the_next_job(db):
    q = Queue(db)
    ran = []

    async def execute(job):
        ran.append(job.branch)
        if job.wait is None:
            raise Parked(Wait(f"run-{job.branch}", 20, time.time() + 60))

    workers = start_workers(q, execute, n=1, comment_workers=0)
    try:
        ids = [q.enqueue(fix(b)).job_id for b in ("exp-a", "exp-b", "exp-c")]
        await until(lambda: len(q.waiting()) == 3, what="every job parked by one worker")
        assert workers.busy == 0 and ran == ["exp-a", "exp-b", "exp-c"]
        q.wake_waiting(ids)
        await until(lambda: all(q.get(i).status == "done" for i in ids), what="the woken jobs")
    finally:
        await workers.stop()
    assert ran == ["exp-a", "exp-b", "exp-c"] * 2 and workers.peak_busy == 1


def settings_for(tmp_path) -> Settings:
    """Settings whose state holds the bot's clone of team/exp (an empty repository will do)."""
    clone = tmp_path / "state" / "repos" / "team" / "exp"
    clone.mkdir(parents=True, exist_ok=True)
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    return Settings(state_dir=tmp_path / "state")


def test_the_watcher_wakes_a_job_whose_run_ended_and_one_past_its_deadline(tmp_path, db):
    q = Queue(db)
    state = StateStore.open(tmp_path / "state")
    ended = state.add_run(id="r-ended", repo="/r", branch="exp-a", backend="local", state="failed")
    running = state.add_run(id="r-running", repo="/r", branch="exp-b", backend="local", state="running")
    late = state.add_run(id="r-late", repo="/r", branch="exp-c", backend="local", state="running")
    now = time.time()
    a = parked_job(q, "exp-a", Wait(ended.id, 20, now + 60))
    b = parked_job(q, "exp-b", Wait(running.id, 20, now + 60))
    c = parked_job(q, "exp-c", Wait(late.id, 20, now - 1))
    watcher = Watcher(settings_for(tmp_path), q)
    # A running record with no handle is still being launched: it stays running (and waiting).
    assert sorted(watcher.sweep()) == [a, c]
    assert [j.id for j in q.waiting()] == [b]
    assert watcher.sweep() == [] and watcher.looks == 2


def test_the_watcher_wakes_a_cancelled_waiting_job_at_once(tmp_path, db):
    q = Queue(db)
    job_id = parked_job(q, "exp-a", Wait("r-x", 20, time.time() + 60))
    with q.db.transaction() as conn:
        conn.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
    assert Watcher(settings_for(tmp_path), q).sweep() == [job_id]


@pytest.mark.parametrize("raw, expected", [(None, 2), ("", 2), ("1", 1), (" 16 ", 16), ("64", 64)])
def test_the_worker_count_comes_from_the_environment(raw, expected):
    assert workers_from_env({} if raw is None else {"FIX_AND_RELAUNCH_WORKERS": raw}) == expected


@pytest.mark.parametrize("raw", ["0", "-1", "two", "2.5", "65"])
def test_a_bad_worker_count_is_refused_at_start_up(raw):
    with pytest.raises(BadInput, match="FIX_AND_RELAUNCH_WORKERS must be a whole number from 1 to 64"):
        workers_from_env({"FIX_AND_RELAUNCH_WORKERS": raw})


async def test_the_watcher_task_stops_with_the_server(tmp_path, db):
    stopping = threading.Event()
    watcher = Watcher(settings_for(tmp_path), Queue(db), poll_s=0.05)
    task = asyncio.create_task(watcher.run(stopping))
    await asyncio.sleep(0.2)
    stopping.set()
    await asyncio.wait_for(task, 2)


def test_a_runs_steps_are_read_at_most_every_few_seconds_its_state_on_every_look(tmp_path, db):
    settings = settings_for(tmp_path)
    state = StateStore.open(settings.state_dir)
    run = state.add_run(id="r-1", repo="/r", branch="exp-a", backend="local", state="running")
    repo = settings.state_dir / "repos" / "team" / "exp"
    watched = [Watched(1, repo, "exp-a", Wait(run.id, 20, time.time() + 60))]
    now = [0.0]
    reads = []

    class Counting(RunWatch):
        def _run(self, *args):
            reads.append(now[0])
            return super()._run(*args)

    eyes = Counting(settings, clock=lambda: now[0])
    for now[0] in (0.0, 2.0, 4.0, 9.0, 10.0, 12.0):
        assert eyes.over(watched, time.time()) == []
    assert reads == [0.0, 10.0]
    state.update_run(run.id, state="failed")
    now[0] = 14.0
    assert eyes.over(watched, time.time()) == [1], "an ended run is seen at the next look"
