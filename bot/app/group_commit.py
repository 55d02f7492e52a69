"""Recording deliveries from the request path with one commit per burst (group commit).

A delivery is answered only once it is committed to the inbox (`Queue.receive_many`), so a crash
after the answer loses nothing; the deliveries handled in one turn of the event loop share one
transaction, once that turn's callbacks have run. A worker admits them into the queue when it
claims (dedupe, lanes), so the answer waits for none of that.

Why the inbox (measured with benchmarks/webhook_ack.py --concurrency 0, GitHub unreachable or
slow, 2026-12-03 on the 2-core host, the same hour): enqueueing the job itself in this commit
(a job row, two indexes and two dedupe keys, ~8 WAL frames) cost ~130 µs of the loop's CPU a
command and gave a p99 of ×1.39–1.46 the bare handler's (4 of 4 measurements over ×1.3); an
inbox row (~1 frame) costs a third of that and gave ×1.15–1.26 (8 of 8 within).

The commit runs on the event loop, not in a thread: at WAL and `synchronous = NORMAL` it is a
write without fsync, while a thread fights the loop for the GIL at every SQLite call
(0.7 rather than 1.2 ms of CPU a command, and a p99 half as long, when this was measured).
What does fsync, copying the WAL into the database file (a checkpoint), is taken off the loop:
`checkpoints` runs it in a thread (a 10–30 ms stall every ~200 commits before, the p99 of a
burst of commands), in a quiet moment: even from a thread, a checkpoint's fsync slows the
commits made meanwhile (a command p99 of 6–8 rather than 2.5–3 ms at 500 a second), and
deliveries come in bursts. Under load that never pauses, every CHECKPOINT_COMMITS commits. A WAL
starts again from its beginning only when a commit finds all of it copied, which such load never
allows, so a WAL past MAX_WAL_FRAMES is then restarted (`Database.checkpoint`), holding the loop's
commits for up to ~25 ms; the bound is high so that bursts with a quiet second every few thousand
commands never pay that wait.

Why not answer first and commit later: a write-ahead file (a delivery appended, answered, then
committed with others every 20 ms, on the loop or from a thread) was measured too. It cut a
command's median acknowledgement by 0.1 ms, but the batch commit delayed whichever requests came
during it: a p99 of ×1.33–1.45 the bare handler's, against ×1.10–1.12 for the group commit (of the
job itself, then), in the same hour.
"""

from __future__ import annotations

import asyncio
import logging

from bot.app.jobs import Payload
from bot.app.queue import Queue, github_keys

log = logging.getLogger(__name__)

CHECKPOINT_S = 1.0  # how often the checkpointer looks; a second without a commit is quiet
CHECKPOINT_COMMITS = 2000  # commits after which it checkpoints, quiet or not
MAX_WAL_FRAMES = 65_536  # 256 MB of 4 kB pages: past it, a checkpoint under load restarts the WAL
RECENT_KEYS = 10_000  # dedupe keys the request path remembers (a few hundred kB)


class GroupCommit:
    """The request path's writer. It also dedupes what this process recorded lately (delivery ids
    and comments, in memory): a redelivery is answered without a write. The dedupe that counts,
    across restarts and processes, is the admission's."""

    def __init__(self, queue: Queue, recent: int = RECENT_KEYS) -> None:
        self.queue = queue
        self._pending: list[tuple[Payload, list[str], asyncio.Future[None]]] = []  # with its dedupe keys
        self._recent: dict[str, None] = {}  # insertion-ordered: the oldest go first
        self._most_recent = recent

    async def receive(self, payload: Payload) -> bool:
        """Record `payload` in the inbox, returning once the burst it came in is committed; or, for
        one this process recorded lately, nothing: False."""
        keys = github_keys(payload)
        if any(key in self._recent for key in keys):
            return False
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._commit)  # after the requests already being handled this turn
        self._pending.append((payload, keys, done))
        await done
        return True

    def _commit(self) -> None:
        burst, self._pending = self._pending, []
        try:
            self.queue.receive_many([payload for payload, _, _ in burst])
        except Exception as exc:  # each request fails as its own write would have
            for _, _, done in burst:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, keys, done in burst:
            self._remember(keys)  # only once committed: a failed write stays retryable
            if not done.done():
                done.set_result(None)

    def _remember(self, keys: list[str]) -> None:
        for key in keys:
            self._recent[key] = None
        while len(self._recent) > self._most_recent:
            del self._recent[next(iter(self._recent))]


async def checkpoints(
    queue: Queue, every: float = CHECKPOINT_S, most: int = CHECKPOINT_COMMITS, wal_frames: int = MAX_WAL_FRAMES
) -> None:
    """Checkpoint the queue's WAL from a thread, instead of in the loop's commits: once `every`
    seconds passed without a commit after some, or after `most` commits (then restarting a WAL
    of over `wal_frames` frames); and once more when cancelled."""
    db = queue.db
    db.checkpoint_elsewhere()
    done = seen = db.commits
    try:
        while True:
            await asyncio.sleep(every)
            now = db.commits  # read once: other threads' commits count too
            quiet, seen = now == seen, now
            if seen != done and (quiet or seen - done >= most):
                done = seen
                await _checkpoint(queue, None if quiet else wal_frames)
    finally:
        await _checkpoint(queue, None)


async def _checkpoint(queue: Queue, restart_over: int | None) -> None:
    try:
        await asyncio.to_thread(queue.db.checkpoint, restart_over=restart_over)
    except Exception as exc:  # a busy or failing checkpoint is tried again next time
        log.warning("WAL checkpoint failed: %s", exc)
