"""Webhook acknowledgement latency and throughput: the real app against a bare aiohttp handler.

    python benchmarks/webhook_ack.py [--requests 2000] [--concurrency 8]

A child process serves, on 127.0.0.1: the real app (`bot.app.server.make_app`, its SQLite queue in
a temporary directory), a bare aiohttp handler that only answers 200, and the local fake
GitHub the real app talks to. This process sends signed requests with a few concurrent
clients and prints p50/p95/p99 latency, throughput, and the ratio real/bare, for:

- `comment`: a signed PR comment that is not a command (the usual delivery: verify, route, ack);
- `command`: `/fix-and-relaunch` on a new PR each time (verify, 👀 reaction, PR lookup, enqueue, ack);
- `bare`: the same signed bytes to a handler that returns 200.

The fake GitHub answers in well under a millisecond; against api.github.com each API call of
the `command` path adds its network round trip. Uses GitHub's payload examples in ../shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_github import (  # noqa: E402
    EXAMPLES,
    WEBHOOK_SECRET,
    FakeGitHub,
    make_settings,
    pr_comment,
    rsa_private_key,
    signed,
)

REPO = "Codertocat/Hello-World"


async def serve(prs: int) -> None:
    from aiohttp import web

    import handlers
    from bot.app.queue import Queue
    from bot.app.server import make_app

    key = rsa_private_key()
    fake = FakeGitHub(app_id="4242", public_key=key.public_key())
    fake.installations[REPO] = 1
    runners = []

    async def start(app):
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        return f"http://127.0.0.1:{runner.addresses[0][1]}"

    fake.url = await start(fake.app())
    for n in range(1, prs + 1):
        fake.add_pull(REPO, n, head_ref=f"exp-{n}", head_sha=f"{n:040x}")
    fake.record = False
    state = tempfile.mkdtemp(prefix="ack-bench-")
    queue = Queue.from_settings(make_settings(fake, key, Path(state)))
    real = await start(
        make_app(
            make_settings(fake, key, Path(state)),
            queue=queue,
            router=handlers.router,
            wandb_handler=handlers.wandb.handle,
        )
    )

    async def bare_handler(request):
        await request.read()
        return web.Response(text="ok")

    bare_app = web.Application()
    bare_app.router.add_post("/webhooks/github", bare_handler)
    bare = await start(bare_app)
    print(json.dumps({"real": real, "bare": bare, "github": fake.url}), flush=True)
    await asyncio.Event().wait()


def bodies(api_url: str, kind: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for n in range(1, count + 1):
        data = pr_comment(api_url, "/fix-and-relaunch" if kind == "command" else "Looks good to me")
        issue = data["issue"]
        issue["number"] = n
        issue["pull_request"]["url"] = f"{api_url}/repos/{REPO}/pulls/{n}"
        issue["comments_url"] = f"{api_url}/repos/{REPO}/issues/{n}/comments"
        body = json.dumps(data).encode()
        out.append((body, signed(body, "issue_comment", f"{kind}-{n}-{time.time_ns()}", WEBHOOK_SECRET)))
    return out


async def hammer(url: str, requests: list[tuple[bytes, dict[str, str]]], concurrency: int) -> dict[str, float]:
    latencies: list[float] = []
    pending = iter(requests)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def client():
            for body, headers in pending:
                start = time.perf_counter()
                async with session.post(url + "/webhooks/github", data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status != 200:
                        raise SystemExit(f"{url}: HTTP {resp.status}: {await resp.text()}")
                latencies.append(time.perf_counter() - start)

        wall = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(concurrency)))
        wall = time.perf_counter() - wall
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "p99_ms": q[98] * 1000,
        "rps": len(latencies) / wall,
        "n": len(latencies),
    }


async def bench(urls: dict[str, str], n: int, concurrency: int) -> dict[str, dict[str, float]]:
    api = urls["github"]
    warm = bodies(api, "comment", 100)
    await hammer(urls["real"], warm, concurrency)
    await hammer(urls["bare"], warm, concurrency)
    comment = bodies(api, "comment", n)
    results = {
        "bare": await hammer(urls["bare"], comment, concurrency),
        "comment": await hammer(urls["real"], comment, concurrency),
        "command": await hammer(urls["real"], bodies(api, "command", n), concurrency),
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.serve))
        return
    if not EXAMPLES.exists():
        raise SystemExit(f"{EXAMPLES} is absent: the benchmark sends GitHub's payload examples")
    child = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(args.requests)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        urls = json.loads(child.stdout.readline())
        results = asyncio.run(bench(urls, args.requests, args.concurrency))
    finally:
        child.terminate()
        child.wait()
    print(f"{args.requests} signed requests per target, {args.concurrency} concurrent clients, 127.0.0.1")
    print(f"{'target':<10}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}")
    for name, r in results.items():
        print(f"{name:<10}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rps']:>9.0f}")
    bare = results["bare"]
    for name in ("comment", "command"):
        r = results[name]
        print(
            f"{name}/bare: p50 x{r['p50_ms'] / bare['p50_ms']:.1f}, p95 x{r['p95_ms'] / bare['p95_ms']:.1f}, "
            f"throughput x{r['rps'] / bare['rps']:.2f}"
        )


if __name__ == "__main__":
    main()
