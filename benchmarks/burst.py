"""A burst of failures: N branches fail at once and get `/fix-and-relaunch` together.

    python benchmarks/burst.py [--branches 50] [--step-time 1.5] [--workers 2] [--backend local|slurm] [--code PATH]
                               [--restart-after S] [--keep]

Through the real server: `python -m bot serve` in a child process (the code of `--code`, this
checkout by default: point it at a checkout of an earlier commit to measure that), the local
fake GitHub (tests/support/fake_github.py) in this process, a bare git remote, real git and the
local launch backend (each relaunch a real process on this machine, in the sandbox when bwrap
is here) or, with `--backend slurm`, the Slurm test cluster (tests/support/slurm_cluster.py: one
node with this machine's cores, so most relaunched jobs pend in its queue; the jobs' own time
is then mostly their queueing). Every branch holds the toy experiment with a batch size that runs out of memory, and
a failed run of it; the fix halves the batch size and the relaunched run prints one step every
`--step-time` seconds for 25 steps (~37 s at the default). The toy logs no W&B history, so the
bot verifies such a run when it ends (with W&B it would at `verify.min_steps`, 20 here: ~30 s).
The N comments arrive together; this process then watches the state database and /healthz.
Set-up (the N failed runs) takes about a second per branch.

It prints the figures, one last line:

    burst: N branches, last relaunched after X s, last verified after Y s, peak workers busy W, peak RSS M MB

X: from the triggers to the last relaunched run's record; Y: to the last job done with its
check run posted (each verified, or the line says how many were not); W: the most jobs in
progress at once, sampled from /healthz every 0.2 s (a job parked at its wait is not busy);
M: the server process's peak resident memory (VmHWM), its runs excluded (they are their own
processes). With `--restart-after S` the server gets SIGTERM S seconds after the triggers and a
new one starts on the same state; the run then also prints how long the exit took and the most
relaunched runs and fix commits any branch got (1 and 1: every wait resumed, nothing twice). Targets (issue 15), with 50 branches: X <= 60, Y <= the jobs' own time + 60,
M <= 300.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.core.settings import Settings  # noqa: E402
from bot.loop.launch import launch_branch, wait_for  # noqa: E402
from bot.loop.repo_context import RepoContext  # noqa: E402
from bot.repo.publish import clone_for_server  # noqa: E402
from tests.support.experiment import BASE_FILES, CONFIG_PY, repo_config  # noqa: E402
from tests.support.fake_github import (  # noqa: E402
    APP_ID,
    INSTALLATION_ID,
    FakeGitHub,
    pem,
    pr_comment,
    rsa_private_key,
    settings_with_remote,
    signed,
)
from tests.support.git_repos import git, make_origin  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.server_process import healthy, serve  # noqa: E402
from tests.support.slurm_cluster import SlurmCluster  # noqa: E402

REPO = "Codertocat/Hello-World"  # the repository of GitHub's payload examples
MIN_STEPS = 20
RUN_TAIL = 5  # steps a relaunched run logs past MIN_STEPS


@dataclass
class Figures:
    triggered_at: float = 0.0
    relaunched: dict[str, float] = field(default_factory=dict)  # branch -> seconds after the triggers
    done: dict[str, float] = field(default_factory=dict)
    verified: int = 0
    peak_busy: int = 0
    busy_while_only_waiting: int | None = None  # the most busy workers seen while every job waited
    restart_exit_s: float | None = None  # how long the server took to exit at SIGTERM (--restart-after)
    peak_rss_mb: float = 0.0


def branch_names(n: int) -> list[str]:
    return [f"exp-{i:03d}" for i in range(n)]


def build_origin(work: Path, n: int, step_time: float, backend: str) -> Path:
    """A bare remote whose N branches each hold the toy experiment with an OOM batch size."""
    slow_oom = CONFIG_PY.format(batch_size=128, data_path="data/train.csv").replace(
        '"steps": 5,', f'"steps": {MIN_STEPS + RUN_TAIL},\n    "step_time": {step_time},'
    )
    config = repo_config(command="python main.py").replace("min_steps: 3", f"min_steps: {MIN_STEPS}")
    config = config.replace("timeout: 60", "timeout: 3600").replace("launch:\n", f"launch:\n  backend: {backend}\n")
    base = {**BASE_FILES, ".github/fix-and-relaunch.yml": config}
    (work / "exp").mkdir(parents=True)
    origin, _ = make_origin(work / "exp", base, {b: {"src/config.py": slow_oom} for b in branch_names(n)})
    return origin


def failed_runs(settings: Settings, branches: list[str]) -> None:
    """Each branch's failed run, launched by the bot earlier on its clone (all at once)."""
    clone = clone_for_server(settings.state_dir, REPO, settings.github_git_url.format(repo=REPO))
    ctx = RepoContext.open(settings, clone)
    records = [launch_branch(ctx, branch) for branch in branches]
    for record in records:
        assert wait_for(ctx, record).state == "failed", record


def comment_for(fake: FakeGitHub, number: int) -> bytes:
    """GitHub's example comment, made a comment on pull request `number` with an id of its own."""
    data = pr_comment(fake.url, "/fix-and-relaunch")
    original = data["comment"]["id"]
    text = json.dumps(data)
    for kind in ("issues", "pulls", "pull"):
        text = text.replace(f'/{kind}/1"', f'/{kind}/{number}"').replace(f"/{kind}/1/", f"/{kind}/{number}/")
    data = json.loads(text.replace(str(original), str(10_000 + number)))
    data["issue"]["number"] = number
    return json.dumps(data).encode()


def progress(state_dir: Path, since: float, figures: Figures, branches: list[str]) -> None:
    """Relaunched runs and finished jobs so far, from the state database."""
    with sqlite3.connect(state_dir / "state.db") as db:
        for branch, created in db.execute(
            "SELECT branch, MIN(created_at) FROM runs WHERE created_at > ? GROUP BY branch", (since,)
        ):
            figures.relaunched.setdefault(branch, created - since)
        for branch, status, updated in db.execute("SELECT branch, status, updated_at FROM jobs WHERE kind = 'fix'"):
            if status in ("done", "failed") and branch in branches:
                figures.done.setdefault(branch, updated - since)


async def sample_busy(session: aiohttp.ClientSession, url: str, figures: Figures) -> None:
    async with session.get(f"{url}/healthz") as response:
        health = await response.json()
    figures.peak_busy = max(figures.peak_busy, health["busy"])
    queue = health["queue"]
    if queue.get("waiting") and not queue.get("queued") and not queue.get("running"):
        figures.busy_while_only_waiting = max(figures.busy_while_only_waiting or 0, health["busy"])


def relaunches_and_fixes(state_dir: Path, origin: Path, since: float, branches: list[str]) -> tuple[int, int]:
    """The most relaunched runs, and the most fix commits, that any one branch got."""
    with sqlite3.connect(state_dir / "state.db") as db:
        runs = dict(db.execute("SELECT branch, COUNT(*) FROM runs WHERE created_at > ? GROUP BY branch", (since,)))
    subjects = [git(origin, "log", "--format=%s", f"main..{b}").splitlines() for b in branches]
    fixes = [sum(subject.startswith("Fix: ") for subject in branch) for branch in subjects]
    return max(runs.values(), default=0), max(fixes, default=0)


async def restart(server: subprocess.Popen[str], start: Any, figures: Figures) -> subprocess.Popen[str]:
    """SIGTERM the server (its jobs stop at a step boundary, its waits stay stored), start another."""
    figures.peak_rss_mb = max(figures.peak_rss_mb, peak_rss_mb(server.pid))
    stopped = time.monotonic()
    server.terminate()
    await asyncio.to_thread(server.wait, 60)
    figures.restart_exit_s = time.monotonic() - stopped
    print(f"restart: the server exited {figures.restart_exit_s:.1f} s after SIGTERM; starting another", flush=True)
    return start()


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def burst(args: argparse.Namespace, work: Path) -> Figures:
    key = rsa_private_key()
    fake = FakeGitHub(app_id=APP_ID, public_key=key.public_key())
    runner = web.AppRunner(fake.app())
    await runner.setup()
    fake_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", fake_port).start()
    fake.url = f"http://127.0.0.1:{fake_port}"
    fake.installations[REPO] = INSTALLATION_ID

    branches = branch_names(args.branches)
    if args.backend == "slurm":  # one node with this machine's cores: most relaunched jobs pend
        cluster = SlurmCluster.start(work / "slurm")
        os.environ.update(cluster.env)  # for the failed runs launched here and for the server
    origin = build_origin(work, args.branches, args.step_time, args.backend)
    settings = settings_with_remote(fake, key, work, origin, REPO)
    began = time.monotonic()
    await asyncio.to_thread(failed_runs, settings, branches)
    print(f"set-up: {args.branches} branches with a failed run each in {time.monotonic() - began:.0f} s", flush=True)
    for number, branch in enumerate(branches, start=1):
        fake.add_pull(REPO, number, head_ref=branch, head_sha=git(origin, "rev-parse", branch))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    figures = Figures()
    with open(work / "serve.log", "w") as log:

        def start() -> subprocess.Popen[str]:
            return serve(
                settings,
                port,
                pem(key),
                log,
                code=Path(args.code).resolve(),
                FIX_AND_RELAUNCH_WORKERS=str(args.workers),
                PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",  # `python` is this one
            )

        server = start()
        try:
            async with aiohttp.ClientSession() as session:
                await healthy(session, url, timeout=60)
                bodies = [comment_for(fake, n) for n in range(1, args.branches + 1)]
                since = time.time()
                figures.triggered_at = since

                async def post(body: bytes) -> None:
                    headers = signed(body, "issue_comment", str(uuid.uuid4()))
                    async with session.post(f"{url}/webhooks/github", data=body, headers=headers) as response:
                        assert response.status == 200, await response.text()

                await asyncio.gather(*(post(body) for body in bodies))
                deadline = time.monotonic() + args.timeout
                restart_at = None if args.restart_after is None else time.monotonic() + args.restart_after
                while len(figures.done) < len(branches) and time.monotonic() < deadline:
                    if restart_at is not None and time.monotonic() >= restart_at:
                        restart_at, server = None, await restart(server, start, figures)
                        await healthy(session, url, timeout=60)
                    await sample_busy(session, url, figures)
                    progress(settings.state_dir, since, figures, branches)
                    await asyncio.sleep(0.2)
                    assert server.poll() is None, (work / "serve.log").read_text()[-3000:]
                figures.peak_rss_mb = max(figures.peak_rss_mb, peak_rss_mb(server.pid))
        finally:
            server.terminate()
            server.wait(timeout=30)
            await runner.cleanup()
            if args.backend == "slurm":
                cluster.stop()
    checks = fake.find("POST", "/check-runs")
    figures.verified = sum(c.body.get("conclusion") == "success" for c in checks)
    print(f"verified: {figures.verified} of {len(branches)}; jobs done: {len(figures.done)}")
    only_waiting = figures.busy_while_only_waiting
    if only_waiting is None:
        print("workers busy while every job only waited: never seen (no job was ever parked at a wait)")
    else:
        print(f"workers busy while every job only waited: at most {only_waiting}")
    if figures.restart_exit_s is not None:
        relaunches, fixes = relaunches_and_fixes(settings.state_dir, origin, figures.triggered_at, branches)
        print(f"after the restart: at most {relaunches} relaunched run(s) and {fixes} fix commit(s) per branch")
    last_relaunch = max(figures.relaunched.values(), default=float("nan"))
    last_done = max(figures.done.values(), default=float("nan"))
    own = (MIN_STEPS + RUN_TAIL) * args.step_time
    print(
        f"jobs' own time: ~{own:.0f} s (the toy logs no W&B history: a run is verified when it ends); workers: {args.workers}"
    )
    print(
        f"burst: {args.branches} branches, last relaunched after {last_relaunch:.1f} s, last verified after "
        f"{last_done:.1f} s, peak workers busy {figures.peak_busy}, peak RSS {figures.peak_rss_mb:.0f} MB"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--branches", type=int, default=50)
    parser.add_argument("--step-time", type=float, default=1.5, help="seconds per step of a relaunched run")
    parser.add_argument("--backend", choices=("local", "slurm"), default="local", help="slurm: the test cluster")
    parser.add_argument("--workers", type=int, default=2, help="FIX_AND_RELAUNCH_WORKERS of the server")
    parser.add_argument("--code", default=str(ROOT), help="the checkout whose `bot` serves (default: this one)")
    parser.add_argument("--timeout", type=float, default=1800, help="give up after this many seconds")
    parser.add_argument(
        "--restart-after", type=float, help="SIGTERM the server this many seconds after the triggers and start another"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (serve.log, state) and say where")
    args = parser.parse_args()
    if args.keep:
        tmp = tempfile.mkdtemp(prefix="burst-")
        print(f"work folder: {tmp}", flush=True)
        asyncio.run(burst(args, Path(tmp)))
        return
    with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
        asyncio.run(burst(args, Path(tmp)))


if __name__ == "__main__":
    main()
