"""Deliveries that come while a commit is under way are enqueued together, in one transaction."""

from __future__ import annotations

import asyncio

from bot.app.group_commit import GroupCommit
from bot.app.jobs import FixJob
from bot.app.queue import EnqueueOutcome, Queue


class CountingQueue(Queue):
    bursts: list[int]

    def enqueue_many(self, payloads):
        self.bursts.append(len(payloads))
        return super().enqueue_many(payloads)


def fix(branch: str, delivery: str) -> FixJob:
    return FixJob(
        repo="team/exp",
        branch=branch,
        clone_url="https://github.com/team/exp.git",
        installation_id=1,
        delivery_id=delivery,
    )


async def test_a_burst_is_one_transaction_and_dedupes_within_itself(tmp_path):
    queue = CountingQueue(tmp_path / "state.db")
    queue.bursts = []
    group = GroupCommit(queue)
    same = [group.enqueue(fix("exp-a", "same")) for _ in range(10)]
    other = [group.enqueue(fix(f"exp-{n}", f"d-{n}")) for n in range(5)]
    results = await asyncio.gather(*same, *other)
    assert queue.bursts == [15]  # all came before the first commit could start
    outcomes = [r.outcome for r in results]
    assert outcomes[:10] == [EnqueueOutcome.QUEUED] + [EnqueueOutcome.DUPLICATE] * 9
    assert outcomes[10:] == [EnqueueOutcome.QUEUED] * 5
    assert len(queue.jobs()) == 6
    await group.enqueue(fix("exp-z", "later"))  # after it: a burst of its own
    assert queue.bursts == [15, 1]
