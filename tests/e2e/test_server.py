"""The GitHub App end to end: a real server, a local GitHub speaking its REST API, a bare git
repository as the remote, real launches. A `/fix-and-relaunch` comment ends in 👀, a pushed
fix, one bot comment edited as the job moves, a check run and a verified relaunch."""

from __future__ import annotations

import asyncio
import functools
import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import aiohttp
import pytest

import handlers
from bot.app.executor import FixJobExecutor
from bot.app.queue import Queue
from bot.app.server import make_app
from bot.loop.launch import launch_branch, wait_for
from bot.loop.repo_context import RepoContext
from bot.repo.publish import clone_for_server
from tests.support import experiment
from tests.support.fake_github import pr_comment, settings_with_remote, signed
from tests.support.fake_wandb import FakeWandb
from tests.support.git_repos import commit_on_origin, git
from tests.support.net import free_port
from tests.support.server_process import healthy, serve
from tests.support.waiting import until

REPO = "Codertocat/Hello-World"

# The composer's part: the app gets the request side of each webhook handed in.
webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)


@pytest.fixture
def world(tmp_path, fake_github, app_key):
    """The repo on a 'remote' the git URL template points at, and the bot's settings."""
    origin, _ = experiment.build(tmp_path / "exp")
    settings = settings_with_remote(fake_github, app_key, tmp_path, origin, REPO)
    return settings, origin


def failed_run_on_bot_clone(settings, branch: str) -> None:
    """The run the bot launched earlier, which failed."""
    clone = clone_for_server(settings.state_dir, REPO, settings.github_git_url.format(repo=REPO))
    record = wait_for(RepoContext.open(settings, clone), launch_branch(RepoContext.open(settings, clone), branch))
    assert record.state == "failed"


def fix_jobs(queue: Queue, status: str | None = None) -> list:
    return [j for j in queue.jobs(status) if j.kind == "fix"]


async def wait_done(queue: Queue, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while queue.jobs("queued") or queue.jobs("running") or queue.jobs("waiting"):
        assert time.monotonic() < deadline, "the job never finished"
        await asyncio.sleep(0.1)


async def run_one_job(aiohttp_client, fake_github, settings, timeout: float = 60) -> Queue:
    queue = Queue.from_settings(settings)
    client = await aiohttp_client(
        webhook_app(settings, queue=queue, executor=FixJobExecutor(settings, queue), workers=1)
    )
    body = json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()
    response = await client.post(
        "/webhooks/github", data=body, headers=signed(body, "issue_comment", str(uuid.uuid4()))
    )
    assert response.status == 200
    await wait_done(queue, timeout)
    return queue


async def test_pr_command_fixes_pushes_reports_and_verifies(aiohttp_client, fake_github, world):
    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-oom")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=git(origin, "rev-parse", "exp-oom"))

    queue = await run_one_job(aiohttp_client, fake_github, settings)

    assert [c.body for c in fake_github.find("POST", "/reactions")] == [{"content": "eyes"}]
    created = fake_github.find("POST", "/issues/1/comments")
    edits = fake_github.find("PATCH")
    assert len(created) == 1, "one bot comment per job"
    assert "diagnosing" in created[0].body["body"]
    assert any("**Fix applied:**" in e.body["body"] and "Re-launching job." in e.body["body"] for e in edits)
    assert "Verified" in edits[-1].body["body"]
    assert "<!-- fix-and-relaunch:job=" in edits[-1].body["body"]
    pushed = git(origin, "rev-parse", "exp-oom")
    assert git(origin, "log", "-1", "--format=%s", "exp-oom").startswith("Fix: halve batch size 128 → 64")
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["head_sha"] == pushed and check.body["conclusion"] == "success"
    assert check.body["name"] == "fix-and-relaunch"
    assert fix_jobs(queue, "done") and not queue.jobs("failed")
    assert queue.attempts_used(REPO, "exp-oom") == 0, "a verified fix resets the budget"


async def test_wandb_alert_places_the_run_and_fixes_its_branch(aiohttp_client, fake_github, world, monkeypatch):
    from bot.app.alerts import runs_lookup
    from tests.support.fake_github import WANDB_SECRET

    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-data")
    sha = git(origin, "rev-parse", "exp-data")
    fake_github.add_pull(REPO, 1, head_ref="exp-data", head_sha=sha)
    fake_github.commit_pulls[sha] = [1]
    with FakeWandb(api_key="k" * 40) as wandb_server:
        wandb_server.add_run(
            "w1",
            project="vision",
            state="failed",
            commit=sha,
            config={"lr": 0.1},
            metadata={"git": {"remote": f"https://github.com/{REPO}.git", "commit": sha}},
        )
        wandb_server.add_run("w0", project="vision", state="finished", commit=sha)
        online = replace(settings, wandb_api_key="k" * 40, wandb_base_url=wandb_server.url)
        queue = Queue.from_settings(settings)
        # The alert is resolved through W&B; the fix itself runs on the offline runs the bot launched.
        client = await aiohttp_client(
            webhook_app(
                settings,
                queue=queue,
                executor=FixJobExecutor(settings, queue),
                runs_lookup=runs_lookup(online),
                workers=1,
            )
        )
        payload = json.dumps({"event_type": "RUN_FAILED", "entity": wandb_server.entity, "project": "vision"}).encode()

        response = await client.post(
            "/webhooks/wandb",
            data=payload,
            headers={"Authorization": f"Bearer {WANDB_SECRET}", "Content-Type": "application/json"},
        )
        assert response.status in (200, 202)
        await wait_done(queue)

    assert git(origin, "log", "-1", "--format=%s", "exp-data").startswith("Fix: ")
    assert fake_github.find("GET", f"/commits/{sha}/pulls"), "the branch was found from the run's commit"
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["conclusion"] == "success"
    assert queue.seen_run(f"{wandb_server.entity}/vision/w1")


# -- a restart in the middle of a job ------------------------------------------------------


async def test_a_second_server_on_the_same_state_dir_refuses_to_start(world, app_key):
    from tests.support.fake_github import pem

    settings, _ = world
    port = free_port()
    first = serve(settings, port, pem(app_key))
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, f"http://127.0.0.1:{port}")
        second = serve(settings, free_port(), pem(app_key), stderr=subprocess.PIPE)
        _, err = second.communicate(timeout=30)
        assert second.returncode != 0
        assert f"another fix-and-relaunch server is using {settings.state_dir}" in err
        assert first.poll() is None, "the first server runs on"
    finally:
        first.kill()
        first.wait(timeout=10)


async def test_a_server_killed_mid_job_resumes_without_pushing_or_launching_twice(fake_github, world, app_key):
    from tests.support.fake_github import pem

    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-resume")
    fake_github.add_pull(REPO, 1, head_ref="exp-resume", head_sha=git(origin, "rev-parse", "exp-resume"))
    fake_github.stall = "**Fix applied:**"  # the report after the push never gets an answer…
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = serve(settings, port, pem(app_key))
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, url)
            body = json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()
            async with session.post(
                f"{url}/webhooks/github", data=body, headers=signed(body, "issue_comment", str(uuid.uuid4()))
            ) as response:
                assert response.status == 200
            await until(
                lambda: any("**Fix applied:**" in json.dumps(c.body) for c in fake_github.find("PATCH")),
                60,
                what="the fix report",
            )
            server.kill()  # …because the bot is killed right then
            server.wait(timeout=10)
            pushed = git(origin, "rev-parse", "exp-resume")
            assert git(origin, "log", "-1", "--format=%s", "exp-resume").startswith("Fix: ")

            fake_github.stall = None
            server = serve(settings, port, pem(app_key))
            await healthy(session, url)
            queue = Queue.from_settings(settings)
            await until(lambda: fix_jobs(queue, "done"), 60, what="the resumed job")

    finally:
        server.kill()
        server.wait(timeout=10)
    assert git(origin, "rev-parse", "exp-resume") == pushed, "no second push"
    clone = settings.state_dir / "repos" / REPO
    ctx = RepoContext.open(settings, clone)
    launches = ctx.state.list_runs(repo=ctx.key, branch="exp-resume")
    assert len(launches) == 2, "the failed run and exactly one relaunch"
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["conclusion"] == "success" and check.body["head_sha"] == pushed


async def test_a_broken_repo_config_is_reported_on_the_pr(aiohttp_client, fake_github, world):
    settings, origin = world
    fake_github.add_pull(REPO, 1, head_ref="exp-badconfig", head_sha=git(origin, "rev-parse", "exp-badconfig"))
    before = git(origin, "rev-parse", "exp-badconfig")

    queue = await run_one_job(aiohttp_client, fake_github, settings)

    assert queue.jobs("failed")
    last = (fake_github.find("PATCH") or fake_github.find("POST", "/issues/1/comments"))[-1].body["body"]
    assert "**Stopped:**" in last and "verify.min\\_stepz" in last
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["conclusion"] == "failure" and check.body["head_sha"] == before
    assert git(origin, "rev-parse", "exp-badconfig") == before


async def test_a_branch_that_moved_since_the_comment_is_not_fixed(aiohttp_client, fake_github, world):
    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-oom")
    seen = git(origin, "rev-parse", "main")  # what the commenter saw: not what the branch holds
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=seen)
    before = git(origin, "rev-parse", "exp-oom")

    await run_one_job(aiohttp_client, fake_github, settings)

    last = fake_github.find("PATCH")[-1].body["body"]
    assert "**Gave up:** the branch moved since the request" in last
    assert git(origin, "rev-parse", "exp-oom") == before


async def test_a_human_commit_titled_like_a_fix_still_counts_as_the_branch_moving(aiohttp_client, fake_github, world):
    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-oom")
    seen = git(origin, "rev-parse", "exp-oom")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=seen)
    human = commit_on_origin(origin, "exp-oom", {"NOTES.md": "typo\n"}, "Fix: typo in notes")

    await run_one_job(aiohttp_client, fake_github, settings)

    last = fake_github.find("PATCH")[-1].body["body"]
    assert "**Gave up:** the branch moved since the request" in last
    assert git(origin, "rev-parse", "exp-oom") == human


@pytest.mark.parametrize("base", ["exp-warmup", "main"])
async def test_a_stacked_pull_request_is_fixed_from_its_own_base(aiohttp_client, fake_github, world, base):
    """exp-tidy is stacked on exp-warmup, which added `warmup_steps`; tidying the config dropped
    the key. The PR targets exp-warmup: its config is the evidence the missing default is
    restored from. Had the bot compared with the default branch, which never had the key, it
    would have had no evidence, and rules alone could not fix it."""
    settings, origin = world
    head = experiment.stacked_branches(origin)
    failed_run_on_bot_clone(settings, "exp-tidy")
    fake_github.add_pull(REPO, 1, head_ref="exp-tidy", head_sha=head, base_ref=base)

    await run_one_job(aiohttp_client, fake_github, settings)

    last = fake_github.find("PATCH")[-1].body["body"]
    if base == "main":
        assert "**Gave up:** no rule fixes this" in last, last
        assert git(origin, "rev-parse", "exp-tidy") == head
        return
    assert "Verified" in last, last
    assert git(origin, "log", "-1", "--format=%s", "exp-tidy").startswith("Fix: ")
    assert '"warmup_steps": 3' in git(origin, "show", "exp-tidy:src/config.py")


# -- the server relaunching on a cluster --------------------------------------------------


@pytest.mark.parametrize("backend", ["slurm", "ray"])
async def test_the_server_fixes_and_relaunches_on_a_cluster(
    request, backend, aiohttp_client, fake_github, app_key, tmp_path
):
    """A NaN run on Slurm or Ray: diagnosed from the scheduler's log, fixed, relaunched there."""
    from bot.demo import sample_repo

    if backend == "slurm":
        request.getfixturevalue("slurm")  # the real cluster, with SLURM_CONF set for the bot
        options = "  slurm: {partition: low}\n"
    else:
        options = f"  ray: {{address: '{request.getfixturevalue('ray_address')}'}}\n"
    work = sample_repo.build(tmp_path / "sample", python=sys.executable)
    git(work, "checkout", "-q", sample_repo.BRANCH)
    (work / ".github" / "fix-and-relaunch.yml").write_text(
        f"launch:\n  backend: {backend}\n  command: {sys.executable} main.py\n{options}"
        "verify:\n  min_steps: 20\n  timeout: 120\nfix:\n  max_attempts: 3\n"
    )
    git(work, "commit", "-q", "-am", f"Run on {backend}")
    git(work, "push", "-q", "origin", sample_repo.BRANCH)
    origin = tmp_path / "sample" / "origin.git"
    settings = settings_with_remote(fake_github, app_key, tmp_path, origin, REPO)
    failed_run_on_bot_clone(settings, sample_repo.BRANCH)
    fake_github.add_pull(REPO, 1, head_ref=sample_repo.BRANCH, head_sha=git(origin, "rev-parse", sample_repo.BRANCH))

    queue = await run_one_job(aiohttp_client, fake_github, settings, timeout=240)

    assert fix_jobs(queue, "done"), queue.jobs("failed")
    assert "Verified" in fake_github.find("PATCH")[-1].body["body"]
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["conclusion"] == "success"
    ctx = RepoContext.open(settings, settings.state_dir / "repos" / REPO)
    runs = ctx.state.list_runs(repo=ctx.key, branch=sample_repo.BRANCH)
    assert {r.backend for r in runs} == {backend} and len(runs) >= 2
