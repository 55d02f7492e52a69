"""What hostile clients cost the webhook server: memory under large unsigned bodies, and how long
slow clients hold it.

    python benchmarks/webhook_limits.py [--bodies 6] [--body-mb 24] [--slow 300]

A child process serves the real app (`bot.app.server.make_app`, real handlers, SQLite queue in a
temporary directory) on 127.0.0.1; this process measures the child from /proc:

- `large`: `--bodies` concurrent POSTs of `--body-mb` MB each without a signature; prints the
  child's RSS before, the most seen while they are sent (sampled every 20 ms), and after, and
  what each got. Target (issue 12): flat RSS, each refused 401 before its body is read.
- `slow`: `--slow` connections with a well-formed signature header that then send their body a
  byte a second; prints how many are answered (408), when the last one was, and the child's open
  file descriptors while they are held and after. Target: all dropped within seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_github import FakeGitHub, make_settings, rsa_private_key  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.raw_http import request_head  # noqa: E402


async def serve() -> None:
    from aiohttp import web

    import handlers
    from bot.app.queue import Queue
    from bot.app.server import make_app

    key = rsa_private_key()
    fake = FakeGitHub(app_id="4242", public_key=key.public_key(), url=f"http://127.0.0.1:{free_port()}")
    settings = make_settings(fake, key, Path(tempfile.mkdtemp(prefix="limits-bench-")))
    app = make_app(
        settings,
        queue=Queue.from_settings(settings),
        router=handlers.router,
        wandb_handler=handlers.wandb.handle,
        act_only_if=handlers.ACT_ONLY_IF,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(json.dumps({"port": runner.addresses[0][1]}), flush=True)
    await asyncio.Event().wait()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


async def status_of(reader: asyncio.StreamReader) -> int | None:
    try:
        line = await reader.readline()
    except ConnectionError:
        return None
    return int(line.split()[1]) if line.startswith(b"HTTP/1.1 ") else None


async def large(port: int, pid: int, count: int, size: int) -> None:
    head = request_head(
        "POST",
        "/webhooks/github",
        [(b"X-GitHub-Event", b"issue_comment"), (b"X-GitHub-Delivery", b"big"), (b"Content-Type", b"application/json")],
        size,
    )
    chunk = b"x" * (1024 * 1024)
    peak, before = 0.0, rss_mb(pid)
    sampling = True

    async def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)

    async def send() -> tuple[int | None, float]:
        start = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        answer: asyncio.Task[int | None] = asyncio.create_task(status_of(reader))
        try:
            for _ in range(size // len(chunk)):
                if answer.done():
                    break
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        status = await answer
        writer.close()
        return status, time.monotonic() - start

    sampler = asyncio.create_task(sample())
    results = await asyncio.gather(*(send() for _ in range(count)))
    sampling = False
    await sampler
    await asyncio.sleep(0.5)
    print(f"\nlarge: {count} concurrent unsigned bodies of {size // 2**20} MB")
    print(f"  answers {sorted(str(s) for s, _ in results)}, slowest after {max(t for _, t in results):.2f} s")
    print(f"  child RSS: before {before:.1f} MB, peak while sent {peak:.1f} MB, after {rss_mb(pid):.1f} MB")


async def slow(port: int, pid: int, count: int) -> None:
    head = request_head(
        "POST",
        "/webhooks/github",
        [
            (b"X-GitHub-Event", b"issue_comment"),
            (b"X-GitHub-Delivery", b"slow"),
            (b"Content-Type", b"application/json"),
            (b"X-Hub-Signature-256", b"sha256=" + b"0" * 64),
        ],
        1000,
    )
    before = open_fds(pid)
    start = time.monotonic()
    answered: list[float] = []

    async def trickle() -> int | None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(head)
        answer = asyncio.create_task(status_of(reader))
        while not answer.done():
            try:
                writer.write(b"{")
                await writer.drain()
            except ConnectionError:
                break
            await asyncio.wait([answer], timeout=1.0)
        status = await answer
        answered.append(time.monotonic() - start)
        writer.close()
        return status

    tasks = [asyncio.create_task(trickle()) for _ in range(count)]
    await asyncio.sleep(2)
    held = open_fds(pid)
    statuses = await asyncio.gather(*tasks)
    await asyncio.sleep(0.5)
    print(f"\nslow: {count} connections sending a byte a second")
    print(f"  answers {dict((s, statuses.count(s)) for s in set(statuses))}, the last after {max(answered):.1f} s")
    print(f"  child open fds: before {before}, while held {held}, after {open_fds(pid)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--bodies", type=int, default=6)
    parser.add_argument("--body-mb", type=int, default=24)
    parser.add_argument("--slow", type=int, default=300, help="slow clients (0: none)")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve())
        return
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert child.stdout is not None
        port = json.loads(child.stdout.readline())["port"]
        asyncio.run(large(port, child.pid, args.bodies, args.body_mb * 2**20))
        if args.slow:
            asyncio.run(slow(port, child.pid, args.slow))
    finally:
        child.terminate()
        child.wait()


if __name__ == "__main__":
    main()
