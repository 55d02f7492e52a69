"""The persistent queue: dedupe, one job per branch, restart and resume, attempts."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bot.app import queue as queue_module
from bot.app.jobs import COMMENTS_LANE, AlertJob, FixJob, JobKind, JobStatus
from bot.app.queue import EnqueueOutcome, Queue
from bot.store.runs import StateStore
from tests.support.paths import REPO_ROOT


def fix(branch="exp-a", delivery="d-1", **more) -> FixJob:
    return FixJob(
        repo="team/exp",
        branch=branch,
        clone_url="https://github.com/team/exp.git",
        installation_id=1,
        delivery_id=delivery,
        **more,
    )


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


def test_received_deliveries_wait_in_the_inbox_until_a_claim_admits_them(db):
    q = Queue(db)
    q.enqueue(fix(delivery="d-0"))  # already acted on
    q.receive_many([fix(delivery="d-0"), fix(branch="exp-b", delivery="d-1"), fix(branch="exp-b", delivery="d-2")])
    assert q.received() == 3 and [j.branch for j in q.jobs()] == ["exp-a"]
    assert q.depth()["received"] == 3

    again = Queue(db)  # a restart keeps them
    claimed = again.claim(COMMENTS_LANE)  # a claim of any lane admits every kind
    assert claimed is None and again.received() == 0
    assert [(j.branch, j.fix.delivery_id) for j in again.jobs()] == [("exp-a", "d-0"), ("exp-b", "d-1")]
    assert again.seen("d-2"), "the busy delivery is remembered, as enqueue remembers it"


def test_admission_takes_the_oldest_batch_per_claim(db, monkeypatch):
    monkeypatch.setattr(queue_module, "ADMIT_BATCH", 3)
    q = Queue(db)
    q.receive_many([fix(branch=f"exp-{n}", delivery=f"d-{n}") for n in range(7)])
    first = q.claim()
    assert first.branch == "exp-0" and q.received() == 4
    assert [j.branch for j in q.jobs("queued")] == ["exp-1", "exp-2"]
    admitted = q.admit()
    assert [p.branch for p, _ in admitted] == ["exp-3", "exp-4", "exp-5"] and q.received() == 1


def test_an_inbox_row_that_cannot_be_read_is_said_and_the_rest_admitted(db, caplog):
    q = Queue(db)
    q.receive_many([fix(delivery="d-1")])
    with q.db.transaction() as conn:
        conn.execute("INSERT INTO inbox (kind, payload, received_at) VALUES ('fix', '{\"repo\": 1}', 0)")
        conn.execute("INSERT INTO inbox (kind, payload, received_at) VALUES ('nonsense', '{}', 0)")
    q.receive_many([fix(branch="exp-b", delivery="d-2")])
    admitted = q.admit()
    assert [p.delivery_id for p, _ in admitted] == ["d-1", "d-2"] and q.received() == 0
    assert sum("inbox row" in r.getMessage() and "unreadable" in r.getMessage() for r in caplog.records) == 2


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
    alert = AlertJob(entity="team", project="proj")
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


def test_jobs_come_back_typed(db):
    q = Queue(db)
    fix_id = q.enqueue(fix(comment_id=5, hint="lower the lr")).job_id
    alert_id = q.enqueue(AlertJob(entity="team", project="proj")).job_id
    job, alert = q.get(fix_id), q.get(alert_id)
    assert (job.kind, job.status, job.repo, job.branch) == (JobKind.FIX, JobStatus.QUEUED, "team/exp", "exp-a")
    assert job.payload == fix(comment_id=5, hint="lower the lr") and job.fix.hint == "lower the lr"
    assert (alert.kind, alert.repo, alert.branch, alert.alert.project) == (JobKind.WANDB_ALERT, None, None, "proj")
    assert q.depth() == {"received": 0, "queued": 2, "running": 0, "waiting": 0, "done": 0, "failed": 0, "cancelled": 0}
    assert isinstance(q.enqueue(fix(delivery="d-2")).outcome, EnqueueOutcome)


def test_a_job_queued_by_the_previous_release_is_claimed_and_read_by_attribute(db):
    """The previous release wrote the payload dict by hand; its rows must still run after an upgrade."""
    Queue(db).close()
    payload = {
        "kind": "fix",
        "repo": "team/exp",
        "base_repo": "team/exp",
        "clone_url": "https://github.com/team/exp.git",
        "installation_id": 7,
        "pr": 3,
        "pr_url": "https://api.github.com/repos/team/exp/pulls/3",
        "comments_url": "https://api.github.com/repos/team/exp/issues/3/comments",
        "branch": "exp-a",
        "head_sha": "a" * 40,
        "delivery_id": "d-old",
        "comment_id": 11,
        "dry_run": True,
        "hint": None,
        "requested_by": "ada",
    }
    con = sqlite3.connect(db)
    con.execute(
        "INSERT INTO jobs (kind, repo, branch, lane, payload, created_at, updated_at) "
        "VALUES ('fix', 'team/exp', 'exp-a', 'branch:team/exp#exp-a', ?, 1, 1)",
        (json.dumps(payload),),
    )
    con.commit()
    con.close()
    q = Queue(db)
    job = q.claim()
    assert (job.fix.installation_id, job.fix.pr, job.fix.dry_run, job.fix.requested_by) == (7, 3, True, "ada")
    assert job.payload.to_json() == payload
    assert q.enqueue(fix(delivery="d-new")).outcome == "busy"  # its lane is the one new jobs use


OPENER = """
import sys, time
from pathlib import Path
from bot.app.jobs import FixJob
from bot.app.queue import Queue
from bot.store.runs import StateStore
kind, state_dir, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
while not go.exists():
    time.sleep(0.001)
if kind == "queue":
    Queue(state_dir / "state.db").enqueue(FixJob(repo="r", branch=sys.argv[4], clone_url="u", installation_id=1))
else:
    StateStore.open(state_dir).add_run(repo="r", branch=sys.argv[4], backend="local")
"""


def test_the_queue_and_the_run_store_create_one_database_together(tmp_path: Path):
    """The server's queue and a command's run store share state.db; both may be first."""
    for n_round in range(3):
        state_dir, go = tmp_path / f"fresh{n_round}", tmp_path / f"go{n_round}"
        state_dir.mkdir()
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", OPENER, kind, str(state_dir), str(go), f"b{n}"],
                cwd=REPO_ROOT,
                stderr=subprocess.PIPE,
                text=True,
            )
            for n, kind in enumerate(["queue", "store"] * 3)
        ]
        time.sleep(0.5)  # all started and waiting: then they open the new file at once
        go.touch()
        results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
        assert all(code == 0 for code, _ in results), [err for _, err in results]
        assert len(StateStore.open(state_dir).list_runs()) == 3
        assert len(Queue(state_dir / "state.db").jobs()) == 3
