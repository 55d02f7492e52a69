"""Deliveries that come while a commit is under way are recorded together, in one transaction; a
claim admits them into the queue."""

from __future__ import annotations

import asyncio
import sqlite3

from bot.app.group_commit import GroupCommit, checkpoints
from bot.app.jobs import FixJob
from bot.app.queue import EnqueueOutcome, Queue


class CountingQueue(Queue):
    bursts: list[int]

    def receive_many(self, payloads):
        self.bursts.append(len(payloads))
        return super().receive_many(payloads)


def fix(branch: str, delivery: str) -> FixJob:
    return FixJob(
        repo="team/exp",
        branch=branch,
        clone_url="https://github.com/team/exp.git",
        installation_id=1,
        delivery_id=delivery,
    )


async def test_a_burst_is_one_transaction_and_its_admission_dedupes_within_it(tmp_path):
    queue = CountingQueue(tmp_path / "state.db")
    queue.bursts = []
    group = GroupCommit(queue)
    same = [group.receive(fix("exp-a", "same")) for _ in range(10)]
    other = [group.receive(fix(f"exp-{n}", f"d-{n}")) for n in range(5)]
    assert await asyncio.gather(*same, *other) == [True] * 15
    assert queue.bursts == [15]  # all came before the first commit could start
    assert queue.received() == 15 and queue.jobs() == []  # in the inbox, nothing decided yet

    admitted = []
    while batch := queue.admit():  # a batch at a time, as claims admit them
        admitted += batch
    outcomes = [result.outcome for _, result in admitted]
    assert outcomes[:10] == [EnqueueOutcome.QUEUED] + [EnqueueOutcome.DUPLICATE] * 9
    assert outcomes[10:] == [EnqueueOutcome.QUEUED] * 5
    assert len(queue.jobs()) == 6 and queue.received() == 0
    assert await group.receive(fix("exp-z", "later"))  # after it: a burst of its own
    assert queue.bursts == [15, 1]
    assert await group.receive(fix("exp-a", "same")) is False  # recorded lately: no write
    assert queue.bursts == [15, 1] and queue.received() == 1


async def test_the_request_path_remembers_only_the_latest_keys(tmp_path):
    queue = Queue(tmp_path / "state.db")
    group = GroupCommit(queue, recent=2)
    for n in range(3):
        assert await group.receive(fix(f"exp-{n}", f"d-{n}"))
    assert not await group.receive(fix("exp-2", "d-2"))
    assert await group.receive(fix("exp-0", "d-0")), "forgotten here; the admission dedupes it"
    admitted = []
    while batch := queue.admit():
        admitted += batch
    assert [r.outcome for _, r in admitted] == ["queued"] * 3 + ["duplicate"]


async def test_a_failed_commit_fails_each_request_of_its_burst_and_records_none(tmp_path):
    queue = CountingQueue(tmp_path / "state.db")
    queue.bursts = []
    queue.db.connection.execute("DROP TABLE inbox")  # every insert fails
    group = GroupCommit(queue)
    results = await asyncio.gather(
        *(group.receive(fix(f"exp-{n}", f"d-{n}")) for n in range(3)), return_exceptions=True
    )
    assert queue.bursts == [3] and all(isinstance(r, sqlite3.OperationalError) for r in results)
    queue.db.connection.execute("CREATE TABLE inbox (id INTEGER PRIMARY KEY, kind, payload, received_at)")
    assert await group.receive(fix("exp-0", "d-0")), "GitHub's redelivery of a failed one is recorded"
    assert queue.received() == 1


def wal_frames(db) -> tuple[int, int]:
    """The WAL's frames and how many of them are in the database file, read from a connection of
    the test's own (which checkpoints what it can: ask last)."""
    with sqlite3.connect(db) as conn:
        _busy, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return log, done


async def test_the_loops_commits_leave_the_wal_to_the_checkpoint_thread(tmp_path):
    queue, db = Queue(tmp_path / "state.db"), tmp_path / "state.db"
    task = asyncio.create_task(checkpoints(queue, every=3600))  # started, but not due in this test
    await asyncio.sleep(0)
    size = db.stat().st_size
    for n in range(400):  # one commit each: well over SQLite's 1,000-page auto-checkpoint
        queue.enqueue(fix(f"exp-{n}", f"d-{n}"))
    assert db.stat().st_size == size, "no commit copied the WAL into the database file"

    task.cancel()  # on its way out it checkpoints, in a thread
    await asyncio.gather(task, return_exceptions=True)

    assert db.stat().st_size > size
    log, done = wal_frames(db)
    assert log > 1000 and done == log


async def test_checkpoints_wait_for_a_quiet_moment_or_enough_commits(tmp_path):
    queue, db = Queue(tmp_path / "state.db"), tmp_path / "state.db"
    task = asyncio.create_task(checkpoints(queue, every=0.2, most=30))
    await asyncio.sleep(0)
    size = db.stat().st_size
    for n in range(20):  # a burst with no pause as long as `every`, under `most` commits
        queue.enqueue(fix(f"exp-{n}", f"d-{n}"))
        await asyncio.sleep(0.01)
    assert db.stat().st_size == size, "not during the burst"
    await asyncio.sleep(0.5)
    grown = db.stat().st_size
    assert grown > size, "in the quiet moment after it"

    checkpointed_at = None
    for n in range(20, 120):  # commits that never pause: checkpointed once `most` of them came
        queue.enqueue(fix(f"exp-{n}", f"d-{n}"))
        await asyncio.sleep(0.005)
        if checkpointed_at is None and db.stat().st_size > grown:
            checkpointed_at = n
    assert checkpointed_at is not None and checkpointed_at >= 20 + 30
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_under_load_that_never_pauses_the_wal_stays_bounded(tmp_path):
    queue, wal = Queue(tmp_path / "state.db"), tmp_path / "state.db-wal"
    task = asyncio.create_task(checkpoints(queue, every=0.02, most=20, wal_frames=100))
    await asyncio.sleep(0)
    largest = 0
    for n in range(600):  # a commit every ms: never a quiet moment of 20 ms
        queue.enqueue(fix(f"exp-{n}", f"d-{n}"))
        await asyncio.sleep(0.001)
        largest = max(largest, wal.stat().st_size)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    # Each commit adds several 4 kB frames: 600 of them never restarted would be over 10 MB.
    assert largest < 4 * 1024 * 1024, f"the WAL grew to {largest} bytes"
    assert len(queue.jobs()) == 600
