"""In a real browser (headless Chromium, Debian's `chromium`, driven by Playwright), against the
real `serve` and the local fake GitHub: the set-up page registers the App through the manifest
flow, and the status page shows a fix job go from queued to verified. Screenshots are kept under
the test's tmp dir. Without a browser these skip, or fail with CI=true (`.ci/install-browser.sh`
installs it)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import stat
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from bot.app.jobs import FixJob
from bot.app.queue import Queue
from bot.loop.launch import launch_branch, wait_for
from bot.loop.repo_context import RepoContext
from bot.repo.publish import clone_for_server
from tests.support import experiment
from tests.support.fake_github import INSTALLATION_ID, pem, pr_comment, settings_with_remote, signed
from tests.support.git_repos import git
from tests.support.net import free_port
from tests.support.server_process import healthy, serve, serve_unregistered
from tests.support.waiting import until

pytestmark = pytest.mark.slow

REPO = "Codertocat/Hello-World"
# This machine's closed network refuses background connections: Chromium must not try any.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def page(tmp_path: Path) -> AsyncIterator[Any]:
    """A page in a fresh headless Chromium with an empty profile (its own --user-data-dir)."""
    executable = chromium_path()
    try:
        from playwright.async_api import async_playwright  # deferred: an optional test dependency
    except ImportError:
        async_playwright = None
    if executable is None or async_playwright is None:
        missing = "chromium" if executable is None else "playwright"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{missing} is missing; .ci/install-browser.sh installs it")
        pytest.skip(f"{missing} is not installed (.ci/install-browser.sh)")
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=executable, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield context.pages[0] if context.pages else await context.new_page()
        finally:
            await context.close()


def stop(server: subprocess.Popen[Any]) -> None:
    server.send_signal(signal.SIGTERM)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=10)


async def test_the_set_up_page_registers_the_app_in_a_browser(page, fake_github, tmp_path):
    port, state_dir = free_port(), tmp_path / "state"
    server = serve_unregistered(fake_github.url, state_dir, port)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, base)
            await page.goto(f"{base}/")
            assert await page.inner_text("h1") == "Set up fix-and-relaunch"
            assert f"{base}/webhooks/github" in await page.inner_text("body")
            await page.screenshot(path=str(tmp_path / "1-set-up-page.png"))

            await page.click("text=Register the GitHub App")  # off to GitHub's form
            await page.wait_for_selector("#create")
            assert await page.inner_text("h1") == "Create GitHub App for octocat"
            assert await page.inner_text("#app-name") == "fix-and-relaunch"
            await page.screenshot(path=str(tmp_path / "2-github-confirms.png"))

            await page.click("#create")  # GitHub redirects back with the code
            await page.wait_for_selector("#install")
            assert page.url.startswith(f"{base}/setup/callback?code=")
            assert await page.inner_text("h1") == "Registered fix-and-relaunch"
            [app] = fake_github.registered_apps
            assert await page.get_attribute("#install", "href") == f"{app['html_url']}/installations/new"
            await page.screenshot(path=str(tmp_path / "3-registered.png"))

            async def serving() -> bool:
                try:
                    async with session.get(f"{base}/healthz") as response:
                        return response.status == 200 and (await response.json())["status"] == "ok"
                except aiohttp.ClientError:  # between the set-up server and the webhook server
                    return False

            deadline = asyncio.get_running_loop().time() + 30
            while not await serving():
                assert asyncio.get_running_loop().time() < deadline, "the server never switched to webhooks"
                await asyncio.sleep(0.2)
    finally:
        stop(server)
    folder = state_dir / "github-app"
    assert (folder / "app-id").read_text() == str(app["id"])
    assert (folder / "private-key.pem").read_text() == app["pem"]
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o600}
    assert all((tmp_path / name).stat().st_size > 0 for name in ("1-set-up-page.png", "3-registered.png"))


def held_job(fake_url: str, branch: str, pr: int) -> FixJob:
    """A fix job whose first comment the fake GitHub holds: it keeps a worker busy."""
    return FixJob(
        repo=REPO,
        branch=branch,
        clone_url=f"https://github.com/{REPO}.git",
        installation_id=INSTALLATION_ID,
        base_repo=REPO,
        pr=pr,
        comments_url=f"{fake_url}/repos/{REPO}/issues/{pr}/comments",
    )


async def test_the_status_page_shows_a_job_go_from_queued_to_verified(page, fake_github, app_key, tmp_path):
    origin, _ = experiment.build(tmp_path / "exp")
    settings = settings_with_remote(fake_github, app_key, tmp_path, origin, REPO)
    clone = clone_for_server(settings.state_dir, REPO, settings.github_git_url.format(repo=REPO))
    ctx = RepoContext.open(settings, clone)
    assert wait_for(ctx, launch_branch(ctx, "exp-oom")).state == "failed"  # the run the bot launched, which failed
    fake_github.add_pull(REPO, 1, head_ref="exp-oom", head_sha=git(origin, "rev-parse", "exp-oom"))
    # Both fix workers get a job whose first comment GitHub holds: the next job waits in the queue.
    fake_github.stall, fake_github.hold = "exp-busy", asyncio.Event()

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve(settings, port, pem(app_key))
    queue = Queue.from_settings(settings)
    try:
        async with aiohttp.ClientSession() as session:
            await healthy(session, base)
            for n in (1, 2):
                queue.enqueue(held_job(fake_github.url, f"exp-busy-{n}", 10 + n))
            await until(lambda: len(queue.jobs("running")) == 2, 30, what="two busy workers")
            body = json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()
            headers = signed(body, "issue_comment", str(uuid.uuid4()))
            async with session.post(f"{base}/webhooks/github", data=body, headers=headers) as response:
                assert response.status == 200
            await until(lambda: [j for j in queue.jobs("queued") if j.kind == "fix"], 30, what="the queued fix job")
            [job] = [j for j in queue.jobs("queued") if j.kind == "fix"]

            await page.goto(f"{base}/")
            row = f'#queued tr[data-job="{job.id}"]'
            assert await page.get_attribute(row, "data-status") == "queued"
            assert "Codertocat/Hello-World#exp-oom, PR 1" in await page.inner_text(row)
            assert await page.get_attribute(f"{row} a[href$='/pull/1']", "href") == f"{fake_github.url}/{REPO}/pull/1"
            assert len(await page.query_selector_all("#running tr.job")) == 2
            await page.screenshot(path=str(tmp_path / "1-queued.png"), full_page=True)

            fake_github.hold.set()  # GitHub answers again: the busy jobs go on (and fail), the fix job runs
            done = f'#recent tr[data-job="{job.id}"][data-status="done"]'
            await page.wait_for_selector(done, timeout=240_000)  # the page refreshes itself every 5 s
            assert await page.inner_text(f"{done} .outcome") == "verified"
            pushed = git(origin, "rev-parse", "exp-oom")
            assert await page.get_attribute(f"{done} a[href*='/commit/']", "href") == (
                f"{fake_github.url}/{REPO}/commit/{pushed}"  # GitHub's web address, from GITHUB_API_URL
            )
            steps = await page.inner_text(f"{done} .timeline")
            for step in ("target", "1:decision", "1:commit", "1:push", "1:launch"):
                assert step in steps
            await page.screenshot(path=str(tmp_path / "2-verified.png"), full_page=True)
    finally:
        queue.close()
        stop(server)
    assert (tmp_path / "2-verified.png").stat().st_size > 0
