"""Enqueueing from the request path with one commit per burst (group commit).

A delivery is answered only once its job is committed, so a crash after the answer loses
nothing; but a commit per delivery, on the event loop, costs more than the rest of the request
path. Here the deliveries that arrive while a commit is under way wait for the next one: each
burst is enqueued in one transaction (`Queue.enqueue_many`), in a thread, so the event loop goes
on reading and checking requests meanwhile.
"""

from __future__ import annotations

import asyncio

from bot.app.jobs import Payload
from bot.app.queue import Enqueued, Queue


class GroupCommit:
    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._pending: list[tuple[Payload, asyncio.Future[Enqueued]]] = []
        self._committing: asyncio.Task[None] | None = None

    async def enqueue(self, payload: Payload) -> Enqueued:
        """What `Queue.enqueue(payload)` answers, once the burst it came in is committed."""
        done: asyncio.Future[Enqueued] = asyncio.get_running_loop().create_future()
        self._pending.append((payload, done))
        if self._committing is None:
            self._committing = asyncio.create_task(self._commit_bursts())
        return await done

    async def _commit_bursts(self) -> None:
        try:
            while self._pending:
                burst, self._pending = self._pending, []
                try:
                    results = await asyncio.to_thread(self.queue.enqueue_many, [payload for payload, _ in burst])
                except Exception as exc:  # each request fails as its own enqueue would have
                    for _, done in burst:
                        if not done.done():
                            done.set_exception(exc)
                    continue
                for (_, done), result in zip(burst, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            self._committing = None
