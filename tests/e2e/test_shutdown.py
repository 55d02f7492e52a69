"""Stopping the real `serve` (a subprocess, against a local GitHub, a bare git remote and real
launches) and starting it again: SIGTERM ends it within 10 s, a job waiting for its relaunched
run staying waiting; SIGKILL with a job queued, or with one waiting for its relaunched run,
loses nothing; the next start resumes each job (each wait from the store) without a second
👀, push or launch. While a job only waits, no worker is busy."""

from __future__ import annotations

import json
import signal
import subprocess
import time
import uuid

import aiohttp
import pytest

from bot.app.jobs import JobKind
from bot.app.queue import Queue
from bot.loop.repo_context import RepoContext
from tests.e2e.test_server import REPO, failed_run_on_bot_clone, world  # noqa: F401  (a fixture)
from tests.support.experiment import CONFIG_PY
from tests.support.fake_github import pem, pr_comment, signed
from tests.support.git_repos import commit_on_origin, git
from tests.support.net import free_port
from tests.support.server_process import healthy, serve
from tests.support.waiting import until

BRANCH = "exp-oom"
# 40 steps of 0.25 s, verified at 20: the relaunched run is watched for about 5 s.
SLOW_CONFIG = CONFIG_PY.format(batch_size=128, data_path="data/train.csv").replace(
    '"steps": 5,', '"steps": 40,\n    "step_time": 0.25,'
)
REPO_CONFIG = "launch:\n  command: python main.py\nverify:\n  min_steps: 20\n  timeout: 120\nfix:\n  max_attempts: 2\n"


@pytest.fixture
def slow_branch(world):  # noqa: F811
    settings, origin = world
    commit_on_origin(
        origin,
        BRANCH,
        {"src/config.py": SLOW_CONFIG, ".github/fix-and-relaunch.yml": REPO_CONFIG},
        "Longer runs, verified at 20 steps",
    )
    failed_run_on_bot_clone(settings, BRANCH)
    return settings, origin


def fix_jobs(queue: Queue, status: str | None = None) -> list:
    return [j for j in queue.jobs(status) if j.kind == JobKind.FIX]


def launches(settings) -> list:
    ctx = RepoContext.open(settings, settings.state_dir / "repos" / REPO)
    return ctx.state.list_runs(repo=ctx.key, branch=BRANCH)


async def post_command(session: aiohttp.ClientSession, url: str, fake) -> None:
    body = json.dumps(pr_comment(fake.url, "/fix-and-relaunch")).encode()
    headers = signed(body, "issue_comment", str(uuid.uuid4()))
    async with session.post(f"{url}/webhooks/github", data=body, headers=headers) as response:
        assert response.status == 200


async def watching_relaunched_run(settings) -> None:
    """Wait until the relaunched run has started logging steps: the job is mid-verify."""

    def relaunched_and_stepping() -> bool:
        runs = launches(settings)  # newest first
        return len(runs) == 2 and runs[0].state == "running" and "step 2 " in _log(runs[0])

    await until(relaunched_and_stepping, 90, what="the relaunched run, being watched")


def _log(run) -> str:
    try:
        return open(run.log_path).read() if run.log_path else ""
    except OSError:
        return ""


async def parked(session: aiohttp.ClientSession, url: str, settings) -> None:
    """The job waits for its relaunched run in the store, and no worker is busy with it."""
    queue = Queue.from_settings(settings)
    await until(lambda: fix_jobs(queue, "waiting"), 60, what="the fix job, parked at its wait")
    [job] = fix_jobs(queue, "waiting")
    assert job.wait is not None and job.wait.run_id == launches(settings)[0].id and job.wait.target_steps == 20
    async with session.get(f"{url}/healthz") as response:
        health = await response.json()
    assert health["busy"] == 0 and health["queue"]["waiting"] == 1, health


async def resumed_to_the_end(session, url, settings, fake, origin, app_key) -> subprocess.Popen[str]:
    server = serve(settings, int(url.rsplit(":", 1)[1]), pem(app_key))
    await healthy(session, url)
    queue = Queue.from_settings(settings)
    await until(lambda: fix_jobs(queue, "done"), 120, what="the resumed fix job")
    return server


def assert_fixed_once(settings, fake, origin, pushed: str) -> None:
    assert git(origin, "rev-parse", BRANCH) == pushed, "no second push"
    fixes = git(origin, "log", "--format=%s", f"main..{BRANCH}").splitlines()
    assert sum(s.startswith("Fix: ") for s in fixes) == 1, fixes
    assert len(launches(settings)) == 2, "the failed run and exactly one relaunch"
    assert len(fake.reactions) == 1 and len(fake.find("POST", "/reactions")) == 1, "one 👀"
    [check] = fake.find("POST", "/check-runs")
    assert check.body["conclusion"] == "success" and check.body["head_sha"] == pushed
    assert "Verified" in fake.find("PATCH")[-1].body["body"]


@pytest.mark.slow
async def test_sigterm_mid_verify_exits_within_10_s_and_the_next_start_resumes(
    slow_branch, fake_github, app_key, tmp_path
):
    settings, origin = slow_branch
    fake_github.add_pull(REPO, 1, head_ref=BRANCH, head_sha=git(origin, "rev-parse", BRANCH))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log_file:
        server = serve(settings, port, pem(app_key), stderr=log_file)
        try:
            async with aiohttp.ClientSession() as session:
                await healthy(session, url)
                await post_command(session, url, fake_github)
                await watching_relaunched_run(settings)
                await parked(session, url, settings)
                pushed = git(origin, "rev-parse", BRANCH)

                stopped_at = time.monotonic()
                server.send_signal(signal.SIGTERM)
                code = server.wait(timeout=30)
                took = time.monotonic() - stopped_at
                print(f"SIGTERM to exit: {took:.2f} s")
                assert took <= 10, f"SIGTERM took {took:.1f} s"
                assert code == 0

                queue = Queue.from_settings(settings)
                [job] = fix_jobs(queue)
                assert job.status == "waiting" and job.wait is not None, "a waiting job simply stays waiting"
                server = await resumed_to_the_end(session, url, settings, fake_github, origin, app_key)
        finally:
            server.kill()
            server.wait(timeout=10)
    log = log_path.read_text()
    assert "was never awaited" not in log and "Traceback" not in log, log[-3000:]
    assert_fixed_once(settings, fake_github, origin, pushed)


@pytest.mark.slow
async def test_sigkill_mid_verify_loses_nothing_and_launches_nothing_twice(slow_branch, fake_github, app_key):
    settings, origin = slow_branch
    fake_github.add_pull(REPO, 1, head_ref=BRANCH, head_sha=git(origin, "rev-parse", BRANCH))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(settings, port, pem(app_key))
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, url)
            await post_command(session, url, fake_github)
            await watching_relaunched_run(settings)
            await parked(session, url, settings)
            pushed = git(origin, "rev-parse", BRANCH)
            server.kill()
            server.wait(timeout=10)
            assert [j.status for j in fix_jobs(Queue.from_settings(settings))] == ["waiting"]
            server = await resumed_to_the_end(session, url, settings, fake_github, origin, app_key)
    finally:
        server.kill()
        server.wait(timeout=10)
    assert_fixed_once(settings, fake_github, origin, pushed)


@pytest.mark.slow
async def test_sigkill_with_the_command_queued_loses_nothing(slow_branch, fake_github, app_key):
    settings, origin = slow_branch
    fake_github.add_pull(REPO, 1, head_ref=BRANCH, head_sha=git(origin, "rev-parse", BRANCH))
    fake_github.delay = 2.0  # the worker is still waiting on GitHub when the server dies
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(settings, port, pem(app_key))
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, url)
            await post_command(session, url, fake_github)
            server.kill()
            server.wait(timeout=10)
            queue = Queue.from_settings(settings)
            jobs = queue.jobs()  # still in the inbox, or admitted as a comment job
            assert queue.received() + len(jobs) == 1 and not fix_jobs(queue)
            assert all(j.kind == JobKind.COMMENT and j.status in ("queued", "running") for j in jobs)
            fake_github.delay = 0.0
            server = await resumed_to_the_end(session, url, settings, fake_github, origin, app_key)
    finally:
        server.kill()
        server.wait(timeout=10)
    pushed = git(origin, "rev-parse", BRANCH)
    assert_fixed_once(settings, fake_github, origin, pushed)
