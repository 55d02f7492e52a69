"""The GitHub App end to end: a real server, a local GitHub speaking its REST API, a bare git
repository as the remote, real launches. A `/fix-and-relaunch` comment ends in 👀, a pushed
fix, one bot comment edited as the job moves, a check run and a verified relaunch."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from bot.context import RepoContext
from bot.executor import FixJobExecutor
from bot.jobs import Queue
from bot.launch import launch_branch, wait_for
from bot.server import make_app
from bot.workspace import clone_for_server
from tests import experiment
from tests.fake_github import app_key, example, fake_github, make_settings, pr_comment, signed  # noqa: F401
from tests.fake_wandb import FakeWandb
from tests.git_repos import git

REPO = "Codertocat/Hello-World"


@pytest.fixture
def world(tmp_path, fake_github, app_key):
    """The repo on a 'remote' the git URL template points at, and the bot's settings."""
    origin, _ = experiment.build(tmp_path / "exp")
    owner = tmp_path / "git" / "Codertocat"
    owner.mkdir(parents=True)
    (owner / "Hello-World.git").symlink_to(origin)
    settings = replace(make_settings(fake_github, app_key, tmp_path / "state"),
                       github_git_url=f"file://{tmp_path}/git/{{repo}}.git")
    return settings, origin


def failed_run_on_bot_clone(settings, branch: str) -> None:
    """The run the bot launched earlier, which failed."""
    clone = clone_for_server(settings.state_dir, REPO, settings.github_git_url.format(repo=REPO))
    record = wait_for(RepoContext.open(settings, clone), launch_branch(RepoContext.open(settings, clone), branch))
    assert record.state == "failed"


async def wait_done(queue: Queue, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while queue.jobs("queued") or queue.jobs("running"):
        assert time.monotonic() < deadline, "the job never finished"
        await asyncio.sleep(0.1)


async def test_pr_command_fixes_pushes_reports_and_verifies(aiohttp_client, fake_github, world):
    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-oom")
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=git(origin, "rev-parse", "exp-oom"))
    queue = Queue.from_settings(settings)
    client = await aiohttp_client(make_app(settings, queue=queue, executor=FixJobExecutor(settings, queue),
                                           workers=1))
    body = json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()

    response = await client.post("/webhooks/github", data=body,
                                 headers=signed(body, "issue_comment", str(uuid.uuid4())))
    assert response.status == 200
    await wait_done(queue)

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
    assert queue.jobs("done") and not queue.jobs("failed")
    assert queue.attempts_used(REPO, "exp-oom") == 0, "a verified fix resets the budget"


async def test_wandb_alert_places_the_run_and_fixes_its_branch(aiohttp_client, fake_github, world, monkeypatch):
    from bot.alerts import runs_lookup
    from tests.fake_github import WANDB_SECRET

    settings, origin = world
    failed_run_on_bot_clone(settings, "exp-data")
    sha = git(origin, "rev-parse", "exp-data")
    fake_github.add_pull(REPO, 1, head_ref="exp-data", head_sha=sha)
    fake_github.commit_pulls[sha] = [1]
    with FakeWandb(api_key="k" * 40) as wandb_server:
        wandb_server.add_run("w1", project="vision", state="failed", commit=sha, config={"lr": 0.1},
                             metadata={"git": {"remote": f"https://github.com/{REPO}.git", "commit": sha}})
        wandb_server.add_run("w0", project="vision", state="finished", commit=sha)
        online = replace(settings, wandb_api_key="k" * 40, wandb_base_url=wandb_server.url)
        queue = Queue.from_settings(settings)
        # The alert is resolved through W&B; the fix itself runs on the offline runs the bot launched.
        client = await aiohttp_client(make_app(settings, queue=queue, executor=FixJobExecutor(settings, queue),
                                               runs_lookup=runs_lookup(online), workers=1))
        payload = json.dumps({"event_type": "RUN_FAILED", "entity": wandb_server.entity,
                              "project": "vision"}).encode()

        response = await client.post("/webhooks/wandb", data=payload,
                                     headers={"Authorization": f"Bearer {WANDB_SECRET}",
                                              "Content-Type": "application/json"})
        assert response.status in (200, 202)
        await wait_done(queue)

    assert git(origin, "log", "-1", "--format=%s", "exp-data").startswith("Fix: ")
    assert fake_github.find("GET", f"/commits/{sha}/pulls"), "the branch was found from the run's commit"
    [check] = fake_github.find("POST", "/check-runs")
    assert check.body["conclusion"] == "success"
    assert queue.seen_run(f"{wandb_server.entity}/vision/w1")
