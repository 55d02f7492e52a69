"""Webhook acknowledgement latency and throughput: the real app against a bare aiohttp handler,
at the same load, with GitHub's API unreachable and with it slow (2 s per call).

    python benchmarks/webhook_ack.py [--requests 8000] [--concurrency 8] [--rate 500]

For each GitHub state a child process serves, on 127.0.0.1, the real app
(`bot.app.server.make_app` with the real handlers, its SQLite queue in a temporary directory,
its workers running: the comment worker meets the GitHub of that state, with its retries), and
another child a bare aiohttp handler that reads the body and answers 200. "Unreachable" is a closed port on
127.0.0.1 (connection refused); "slow" is the local fake GitHub answering after 2 s, served by a
third child, as GitHub is another machine: its work is not the app's. This process sends the
same signed requests with a few concurrent clients and prints p50/p95/p99 latency and
throughput, and the ratios real/bare, for:

- `bare`: the signed bytes of a PR comment to the bare handler;
- `comment`: the same to the real app: a comment that is no command (verify, parse, route, ack);
- `command`: `/fix-and-relaunch`, a new comment each time (verify, parse, dedupe, record in the
  inbox, ack). With GitHub unreachable or slow the workers wait on its calls, so they admit only
  8 of the recorded commands per claim, every few seconds: like the jobs, that work waits for GitHub.

Each target is measured at two loads:

- paced (open loop): requests sent at `--rate` per second whatever the answers do, each
  latency counted from the moment it was due (so a stall delays the requests queued behind it
  too). This is the same offered load for both targets, well above what GitHub sends an App,
  and the load the target is judged at;
- saturated (closed loop): `--concurrency` clients send back to back, as fast as each answer
  comes. This measures capacity, for information: on a machine with few cores the client
  competes with the server, so the ratios depend on the machine. The server's CPU per request
  (from /proc, its workers included) is the figure that does not.

Target (issue 12): at the same load, p99 at most 1.3x and throughput at least 0.8x the bare
handler's. Uses GitHub's payload examples in tests/fixtures.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.serialization import load_pem_private_key

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fake_github import (  # noqa: E402
    EXAMPLES,
    WEBHOOK_SECRET,
    FakeGitHub,
    make_settings,
    pem,
    pr_comment,
    rsa_private_key,
    signed,
)
from tests.support.net import free_port  # noqa: E402

REPO = "Codertocat/Hello-World"
STATES = ("unreachable", "slow")
APP, BARE, GITHUB = "app", "bare", "github"  # what a child serves
APP_KEY = "app.pem"  # the App's private key, shared by the slow GitHub's child and the app's
SLOW_S = 2.0
ROUNDS = 4


async def start(app: web.Application) -> str:
    """Serve `app` on a free port of 127.0.0.1, without an access log (as `serve` runs); its URL."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


async def serve_bare() -> None:
    async def bare_handler(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/webhooks/github", bare_handler)
    print(json.dumps({"bare": await start(app)}), flush=True)
    await asyncio.Event().wait()


async def serve_github(state_dir: Path) -> None:
    """The slow fake GitHub; the App's key it checks JWTs with is left in `state_dir` for the app."""
    key = rsa_private_key()
    (state_dir / APP_KEY).write_text(pem(key))
    fake = FakeGitHub(app_id="4242", public_key=key.public_key(), record=False, delay=SLOW_S)
    fake.url = await start(fake.app())
    fake.installations[REPO] = 1
    fake.add_pull(REPO, 1, head_ref="exp-1", head_sha="1" * 40)
    print(json.dumps({"github": fake.url}), flush=True)
    await asyncio.Event().wait()


async def serve(state_dir: Path, github: str | None) -> None:
    """The real app, meeting the GitHub at `github`, or an unreachable one."""
    import handlers
    from bot.app.queue import Queue
    from bot.app.server import make_app

    if github is None:
        key, github = rsa_private_key(), f"http://127.0.0.1:{free_port()}"  # nothing listens there
    else:
        key = load_pem_private_key((state_dir / APP_KEY).read_bytes(), password=None)
    fake = FakeGitHub(app_id="4242", public_key=key.public_key(), url=github)  # only its URL is used
    settings = make_settings(fake, key, state_dir)

    async def no_fix(job, **kwargs):  # fix jobs are not what is measured
        pass

    real = await start(
        make_app(
            settings,
            queue=Queue.from_settings(settings),
            router=handlers.router,
            wandb_handler=handlers.wandb.handle,
            executor=no_fix,
            act_only_if=handlers.ACT_ONLY_IF,  # as `serve` composes it
        )
    )
    print(json.dumps({"real": real, "github": github}), flush=True)
    await asyncio.Event().wait()


def child(name: str, *args: str) -> Coroutine[Any, Any, None]:
    if name == BARE:
        return serve_bare()
    if name == GITHUB:
        return serve_github(Path(args[0]))
    return serve(Path(args[0]), args[1] if len(args) > 1 else None)


def bodies(api_url: str, kind: str, count: int) -> list[tuple[bytes, dict[str, str]]]:
    out = []
    for n in range(1, count + 1):
        data = pr_comment(api_url, "/fix-and-relaunch" if kind == "command" else "Looks good to me")
        data["comment"]["id"] = n
        body = json.dumps(data).encode()
        out.append((body, signed(body, "issue_comment", f"{kind}-{n}-{time.time_ns()}", WEBHOOK_SECRET)))
    return out


async def hammer(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[bytes, dict[str, str]]],
    latencies: list[float],
    *,
    concurrency: int,
) -> float:
    """Send `requests` with `concurrency` clients; add each latency; return the wall time."""
    pending = iter(requests)

    async def client() -> None:
        for body, headers in pending:
            start = time.perf_counter()
            await post(session, url, body, headers)
            latencies.append(time.perf_counter() - start)

    wall = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - wall


async def paced(
    session: aiohttp.ClientSession,
    url: str,
    requests: list[tuple[bytes, dict[str, str]]],
    latencies: list[float],
    *,
    rate: float,
) -> float:
    """Send `requests` at `rate` a second, whatever the answers do; add each latency from the
    moment the request was due; return the wall time.

    One sender starts each request when it is due. (Starting them all at once, each sleeping
    until its time, cost the event loop tens of ms to schedule a round's thousands of tasks:
    a round's first ~25 requests were that late, and they were the p99 of either target.)"""
    began = time.perf_counter()

    async def send(due: float, body: bytes, headers: dict[str, str]) -> None:
        await post(session, url, body, headers)
        latencies.append(time.perf_counter() - due)

    sent = []
    for n, (body, headers) in enumerate(requests):
        due = began + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        sent.append(asyncio.create_task(send(due, body, headers)))
    await asyncio.gather(*sent)
    return time.perf_counter() - began


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]) -> None:
    async with session.post(url + "/webhooks/github", data=body, headers=headers) as resp:
        await resp.read()
        if resp.status != 200:
            raise SystemExit(f"{url}: HTTP {resp.status}: {await resp.text()}")


def figures(latencies: list[float], wall: float, cpu: float) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100)
    return {
        "p50_ms": q[49] * 1000,
        "p95_ms": q[94] * 1000,
        "p99_ms": q[98] * 1000,
        "rps": len(latencies) / wall,
        "cpu_ms": cpu / len(latencies) * 1000,
    }


def cpu_seconds(pid: int) -> float:
    """The user and system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Load = Callable[[aiohttp.ClientSession, str, list[tuple[bytes, dict[str, str]]], list[float]], Awaitable[float]]


async def bench(
    urls: dict[str, str], pids: dict[str, int], n: int, load: Load, rounds: int
) -> dict[str, dict[str, float]]:
    """The targets take turns, `rounds` times, so a machine whose load drifts weighs on each alike.
    Each server has one client session for the whole run: its connections are open (warmed up)
    before the first measured request, as a sender's kept-alive connections would be."""
    connector = functools.partial(aiohttp.TCPConnector, limit=0)
    async with (
        aiohttp.ClientSession(connector=connector()) as real,
        aiohttp.ClientSession(connector=connector()) as bare,
    ):
        sessions = {"real": real, "bare": bare}
        api = urls["github"]
        warm = bodies(api, "comment", 200)
        for server in ("real", "bare"):
            await load(sessions[server], urls[server], warm, [])
        per_round = n // rounds
        comment, command = bodies(api, "comment", n), bodies(api, "command", n)
        gc.collect()
        gc.freeze()  # the client's own GC passes over thousands of requests would delay their sending
        targets = {"bare": ("bare", comment), "comment": ("real", comment), "command": ("real", command)}
        latencies: dict[str, list[float]] = {name: [] for name in targets}
        walls, cpus = dict.fromkeys(targets, 0.0), dict.fromkeys(targets, 0.0)
        for r in range(rounds):
            for name, (server, requests) in targets.items():
                before = cpu_seconds(pids[server])
                chunk = requests[r * per_round : (r + 1) * per_round]
                walls[name] += await load(sessions[server], urls[server], chunk, latencies[name])
                cpus[name] += cpu_seconds(pids[server]) - before
        return {name: figures(latencies[name], walls[name], cpus[name]) for name in targets}


def run_state(state: str, n: int, loads: dict[str, Load]) -> dict[str, dict[str, dict[str, float]]]:
    with tempfile.TemporaryDirectory(prefix="ack-bench-") as state_dir:
        children = []
        try:
            github = []
            if state == "slow":
                children.append(server(GITHUB, state_dir))
                github = [json.loads(_readline(children[-1]))["github"]]
            real, bare = server(APP, state_dir, *github), server(BARE)
            children += [real, bare]
            urls = {**json.loads(_readline(real)), **json.loads(_readline(bare))}
            pids = {"real": real.pid, "bare": bare.pid}
            return {name: asyncio.run(bench(urls, pids, n, load, ROUNDS)) for name, load in loads.items()}
        finally:
            for child in children:
                child.terminate()
                child.wait()


def server(name: str, *args: str) -> subprocess.Popen[str]:
    """A child serving `name` (the app, the slow GitHub or the bare handler); it prints its URLs."""
    return subprocess.Popen(
        [sys.executable, __file__, "--serve", name, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the workers' retries against a GitHub that is not there
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def _readline(child: subprocess.Popen[str]) -> str:
    assert child.stdout is not None
    return child.stdout.readline()


def report(state: str, load: str, results: dict[str, dict[str, float]], *, judged: bool) -> None:
    print(f"\nGitHub {state}{f' ({SLOW_S:g} s per call)' if state == 'slow' else ''}, {load}")
    print(f"{'target':<12}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'req/s':>9}{'CPU ms/req':>12}")
    for name, r in results.items():
        print(
            f"{name:<12}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['rps']:>9.0f}{r['cpu_ms']:>12.3f}"
        )
    bare_p99, bare_rps = results["bare"]["p99_ms"], results["bare"]["rps"]
    for name in ("comment", "command"):
        r = results[name]
        p99, rps = r["p99_ms"] / bare_p99, r["rps"] / bare_rps
        verdict = "meets" if p99 <= 1.3 and rps >= 0.8 else "MISSES"
        target = f" ({verdict} p99 <= 1.3x, throughput >= 0.8x)" if judged else " (capacity, for information)"
        print(f"{name}/bare: p99 x{p99:.2f}, throughput x{rps:.2f}{target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=8000, help="per target and load (its p99: the 80th slowest)")
    parser.add_argument("--concurrency", type=int, default=8, help="clients of the saturated load (0: none)")
    parser.add_argument("--rate", type=float, default=500, help="requests a second of the paced load (0: none)")
    parser.add_argument("--serve", nargs="+", help=argparse.SUPPRESS)  # a child: what, and its arguments
    args = parser.parse_args()
    if args.serve:
        asyncio.run(child(*args.serve))
        return
    if not EXAMPLES.exists():
        raise SystemExit(f"{EXAMPLES} is absent: the benchmark sends GitHub's payload examples")
    loads: dict[str, Load] = {}
    if args.rate:
        loads[f"paced ({args.rate:g} requests a second)"] = functools.partial(paced, rate=args.rate)
    if args.concurrency:
        loads[f"saturated ({args.concurrency} clients back to back)"] = functools.partial(
            hammer, concurrency=args.concurrency
        )
    print(f"{args.requests} signed requests per target and load, 127.0.0.1, on {os.cpu_count()} cores")
    print(f"(the targets take turns, {ROUNDS} rounds, so a drifting machine load weighs on each alike)")
    for state in STATES:
        for load, results in run_state(state, args.requests, loads).items():
            report(state, load, results, judged=load.startswith("paced"))


if __name__ == "__main__":
    main()
