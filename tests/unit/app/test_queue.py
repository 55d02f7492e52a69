"""The persistent queue: dedupe, one job per branch, restart and resume, attempts, workers."""
from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from bot.app.queue import Queue, start_workers
from tests.support.waiting import until


def fix(branch="exp-a", delivery="d-1", **more):
    return {"kind": "fix", "repo": "team/exp", "branch": branch, "delivery_id": delivery, **more}


@pytest.fixture
def db(tmp_path):
    return tmp_path / "state" / "state.db"


def test_enqueue_then_duplicate_delivery_then_busy_branch(db):
    q = Queue(db)
    first = q.enqueue(fix())
    assert first.outcome == "queued" and first.job_id
    assert q.enqueue(fix()).outcome == "duplicate"
    busy = q.enqueue(fix(delivery="d-2"))
    assert busy.outcome == "busy" and busy.active.id == first.job_id
    # the busy delivery is remembered too: a redelivery is a duplicate, not a second "busy"
    assert q.enqueue(fix(delivery="d-2")).outcome == "duplicate"
    assert q.enqueue(fix(branch="exp-b", delivery="d-3")).outcome == "queued"
    assert [j.branch for j in q.jobs("queued")] == ["exp-a", "exp-b"]


def test_wandb_run_dedupe_and_branch_free_after_done(db):
    q = Queue(db)
    job = q.enqueue(fix(delivery=None, run_path="team/proj/r1"))
    assert q.seen_run("team/proj/r1")
    assert q.enqueue(fix(branch="other", delivery=None, run_path="team/proj/r1")).outcome == "duplicate"
    claimed = q.claim()
    assert claimed.id == job.job_id and claimed.status == "running" and claimed.tries == 1
    assert q.enqueue(fix(delivery="d-9")).outcome == "busy"  # running counts as active
    q.finish(claimed.id)
    assert q.get(claimed.id).status == "done"
    assert q.enqueue(fix(delivery="d-10")).outcome == "queued"


def test_same_comment_under_a_new_delivery_id_is_a_duplicate(db):
    """The delivery id is not signed; the comment id is in the signed body."""
    q = Queue(db)
    first = q.enqueue(fix(delivery="d-1", comment_id=77))
    q.finish(q.claim().id)
    assert q.enqueue(fix(delivery="d-replayed", comment_id=77)).outcome == "duplicate"
    assert q.seen("comment:77")
    assert q.enqueue(fix(delivery="d-3", comment_id=78)).outcome == "queued"
    assert [j.id for j in q.jobs()][0] == first.job_id and len(q.jobs()) == 2


def test_a_wandb_run_on_a_busy_branch_is_not_marked_handled(db):
    q = Queue(db)
    q.enqueue(fix(delivery="d-1"))
    assert q.enqueue(fix(delivery="d-2", run_path="team/proj/r2")).outcome == "busy"
    assert not q.seen_run("team/proj/r2") and q.seen("d-2")
    q.finish(q.claim().id)
    assert q.enqueue(fix(delivery=None, run_path="team/proj/r2")).outcome == "queued"
    q.mark_run("team/proj/r3")  # skipped for good
    assert q.seen_run("team/proj/r3")
    assert q.enqueue(fix(branch="b", delivery=None, run_path="team/proj/r3")).outcome == "duplicate"


def test_alerts_coalesce_while_one_waits_but_not_while_one_runs(db):
    q = Queue(db)
    alert = {"kind": "wandb_alert", "entity": "team", "project": "proj", "run_path": None}
    assert q.enqueue(alert).outcome == "queued"
    assert q.enqueue(alert).outcome == "busy"
    q.claim()
    assert q.enqueue(alert).outcome == "queued"


def test_restart_requeues_running_job_and_keeps_its_steps(db):
    q = Queue(db)
    job_id = q.enqueue(fix()).job_id
    claimed = q.claim()
    q.record_step(claimed.id, "diagnosed", {"category": "nan_loss"})
    q.record_step(claimed.id, "pushed", {"commit": "abc123"})
    q.close()  # the process dies here, mid-job

    again = Queue(db)
    assert again.get(job_id).status == "running"
    assert again.recover() == [job_id]
    resumed = again.claim()
    assert resumed.id == job_id and resumed.tries == 2
    assert again.steps(job_id) == {"diagnosed": {"category": "nan_loss"}, "pushed": {"commit": "abc123"}}
    assert list(again.steps(job_id)) == ["diagnosed", "pushed"]


def test_tables_are_in_the_shared_state_db_with_wal(db):
    Queue(db).close()
    con = sqlite3.connect(db)
    tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"jobs", "deliveries", "job_steps"} <= tables
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_cancel_branch_drops_queued_and_flags_running(db):
    q = Queue(db)
    running = q.enqueue(fix(branch="a", delivery="1")).job_id
    q.claim()
    queued = q.enqueue(fix(branch="b", delivery="2")).job_id
    assert q.cancel_branch("team/exp", "b") == [queued]
    assert q.get(queued).status == "cancelled"
    assert q.cancel_branch("team/exp", "a") == []
    assert q.cancel_requested(running)
    q.finish(running)
    assert q.get(running).status == "done"
    assert q.claim() is None


def test_attempts_persist_across_queue_objects(db):
    q = Queue(db)
    assert q.attempts_used("team/exp", "a") == 0
    assert q.add_attempt("team/exp", "a") == 1
    assert q.add_attempt("team/exp", "a") == 2
    q.close()
    q = Queue(db)
    assert q.attempts_used("team/exp", "a") == 2
    assert q.attempts_used("team/exp", "b") == 0
    q.reset_attempts("team/exp", "a")
    assert q.attempts_used("team/exp", "a") == 0


def test_record_step_from_another_thread(db):
    q = Queue(db)
    job_id = q.enqueue(fix()).job_id
    t = threading.Thread(target=q.record_step, args=(job_id, "launched", {"run": "r2"}))
    t.start()
    t.join()
    assert q.steps(job_id) == {"launched": {"run": "r2"}}


async def test_workers_run_jobs_and_survive_exceptions(db):
    q = Queue(db)
    seen = []

    async def execute(job):
        seen.append(job["branch"])
        if job["branch"] == "boom":
            raise RuntimeError("launcher exploded")

    workers = start_workers(q, execute, n=2)
    try:
        ids = [q.enqueue(fix(branch=b, delivery=b)).job_id for b in ("boom", "ok-1", "ok-2")]
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
    job_id = q.enqueue(fix()).job_id
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
