"""The latency of the webhook's durable write on a disk: one SQLite commit of a command, against the
same bytes written as one write() and as SQLite writes them, paced at 500 a second.

    python benchmarks/commit_latency.py [DIR] [--commits 2000] [--rate 500] [--rounds 3]

DIR is where the files go (default: the system temp dir), so point it at the disk the bot's state
directory is on. Each round times, for `--commits` paced operations each:

- `one write`: one 32 kB pwrite, rewriting a 64 MB file from its start round after round, the file
  synced after each round (as a WAL is, by the checkpoint, before it is written again);
- `16 pwrites`: the same 32 kB as a WAL commit writes them, into a file of their own: 8 frames,
  each a 24-byte header and a 4 kB page (two pwrites a frame);
- `enqueue`: `Queue.enqueue` of one `/fix-and-relaunch` comment job (a job row, its indexes and two
  dedupe keys), what the request path wrote before the inbox;
- `receive`: `Queue.receive_many` of one such job, a row in the inbox, what it writes now.

Both commit in WAL mode at synchronous = NORMAL (no fsync), the WAL checkpointed between rounds as
the server does.

Why: on the ext4 disk of the 2-core host where benchmarks/webhook_ack.py is run, a command's p99
varied between runs far more than a plain comment's, and a commit's p99 inside the server was
~0.9 ms on that disk against ~0.25 ms on tmpfs. Here (2026-12-02, that host): the first round,
into new files, gave p99s of 65 / 101 / 379 µs (one write / 16 pwrites / commit); the next
rounds, rewriting synced files, 53 / 749 / 1,139 µs. Rewriting a synced file in small writes is
slow on that file system, and a WAL restarted after a checkpoint is just that. Emptying the WAL
at each quiet checkpoint (so commits write a new file) brought the commit's p99 here to
360–490 µs, but made the server's ack p99 worse in both A/B runs of webhook_ack.py, so the
server does not do it. What it does instead is write less: an inbox row is about one WAL frame
where a job was eight. Here (2026-12-03, same host), rounds 2 and 3, enqueue / receive: p50 86–156
/ 45–53 µs, p99 703–1,224 / 306–312 µs.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gidgethub import sansio  # noqa: E402

from bot.app.jobs import CommentJob  # noqa: E402
from bot.app.queue import Queue  # noqa: E402
from handlers.github import command_comment  # noqa: E402
from tests.support.fake_github import pr_comment  # noqa: E402

FRAMES, PAGE, FRAME_HEADER = 8, 4096, 24  # what one command's commit adds to the WAL, measured


def commands(first: int, count: int) -> list[CommentJob]:
    """`/fix-and-relaunch` comment jobs as the webhook makes them, from GitHub's payload example."""
    jobs = []
    for n in range(first, first + count):
        data = pr_comment("https://api.github.com", "/fix-and-relaunch")
        data["comment"]["id"] = n
        job = command_comment(sansio.Event(data, event="issue_comment", delivery_id=f"bench-{n}-{time.time_ns()}"))
        assert job is not None
        jobs.append(job)
    return jobs


def paced(op: Callable[[int], None], count: int, rate: float) -> list[float]:
    """Run `op(i)` `count` times at `rate` a second (sleeping between); each call's duration."""
    took, began = [], time.perf_counter()
    for i in range(count):
        if (wait := began + i / rate - time.perf_counter()) > 0:
            time.sleep(wait)
        start = time.perf_counter()
        op(i)
        took.append(time.perf_counter() - start)
    return took


def line(label: str, took: list[float]) -> str:
    q = statistics.quantiles(took, n=1000, method="inclusive")
    us = [q[499] * 1e6, q[989] * 1e6, q[998] * 1e6, max(took) * 1e6]
    return f"{label:<12}" + "".join(f"{v:>9.0f}" for v in us)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("dir", nargs="?", help="where the files go (default: the system temp dir)")
    parser.add_argument("--commits", type=int, default=2000, help="operations of each kind per round")
    parser.add_argument("--rate", type=float, default=500, help="a second")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="commit-bench-", dir=args.dir) as tmp:
        queue = Queue(Path(tmp) / "state.db")
        queue.db.checkpoint_elsewhere()  # as the server: checkpoints between rounds, not in commits
        whole, split = (os.open(Path(tmp) / name, os.O_RDWR | os.O_CREAT) for name in ("whole.bin", "split.bin"))
        page, header, block = os.urandom(PAGE), os.urandom(FRAME_HEADER), os.urandom(FRAMES * PAGE)
        frame = FRAME_HEADER + PAGE

        def one_write(i: int) -> None:
            os.pwrite(whole, block, i * len(block))

        def frames(i: int) -> None:
            for f in range(FRAMES):
                at = (i * FRAMES + f) * frame
                os.pwrite(split, header, at)
                os.pwrite(split, page, at + FRAME_HEADER)

        jobs: list[CommentJob] = []

        def enqueue(i: int) -> None:
            queue.enqueue(jobs[i])

        def receive(i: int) -> None:
            queue.receive_many([jobs[i]])

        print(f"{args.commits} paced at {args.rate:g}/s per kind and round, in {tmp} ({os.cpu_count()} cores)")
        print(f"{'µs':<12}{'p50':>9}{'p99':>9}{'p99.9':>9}{'max':>9}")
        for r in range(args.rounds):
            print(f"round {r + 1}")
            jobs = commands(r * args.commits, args.commits)
            ops = (("one write", one_write), ("16 pwrites", frames), ("enqueue", enqueue), ("receive", receive))
            for label, op in ops:
                print(line(label, paced(op, args.commits, args.rate)), flush=True)
            for fd in (whole, split):
                os.fsync(fd)
            queue.db.checkpoint()
            time.sleep(1.0)
        for fd in (whole, split):
            os.close(fd)
        queue.close()


if __name__ == "__main__":
    main()
