"""GitHub calls retry GitHub's hiccups (5xx, timeouts, lost connections, rate limits) and nothing
else, through real gidgethub against the local fake GitHub."""

from __future__ import annotations

import time

import aiohttp
import gidgethub
import pytest
from multidict import CIMultiDict

from bot.app.github_api import RetryingGitHubAPI, RetryPolicy, asked_wait
from bot.app.github_auth import GitHubApp
from tests.support.fake_github import INSTALLATION_ID
from tests.support.net import free_port

FAST = RetryPolicy(attempts=4, max_delay_s=10, first_wait_s=0.01, max_wait_s=0.05)
REPO = "Codertocat/Hello-World"


@pytest.fixture
async def gh(settings, fake_github):
    async with aiohttp.ClientSession() as session:
        gh = await GitHubApp(settings, session, retry=FAST).gh_for_installation(INSTALLATION_ID)
        fake_github.calls.clear()
        yield gh


async def test_a_5xx_is_retried_until_github_answers(gh, fake_github):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    fake_github.faults = [502, 500, 503]
    pr = await gh.getitem(f"/repos/{REPO}/pulls/1")
    assert pr["head"]["ref"] == "exp-a"
    assert len(fake_github.find("GET", "/pulls/1")) == 4


async def test_a_rate_limit_waits_as_long_as_github_asks(gh, fake_github):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    fake_github.faults = [429]
    start = time.monotonic()
    await gh.getitem(f"/repos/{REPO}/pulls/1")
    assert time.monotonic() - start >= 1.0  # Retry-After: 1
    fake_github.faults = [403]  # the primary rate limit: a 403 with no requests left
    await gh.getitem(f"/repos/{REPO}/pulls/1")
    assert len(fake_github.find("GET", "/pulls/1")) == 4


async def test_when_the_retries_are_spent_gidgethub_raises_the_last_answer(gh, fake_github):
    fake_github.faults = [500] * FAST.attempts
    with pytest.raises(gidgethub.GitHubBroken):
        await gh.getitem(f"/repos/{REPO}/pulls/1")
    assert len(fake_github.calls) == FAST.attempts


async def test_an_answer_that_is_not_a_hiccup_is_not_retried(gh, fake_github):
    with pytest.raises(gidgethub.BadRequest):
        await gh.getitem(f"/repos/{REPO}/pulls/404")
    assert len(fake_github.calls) == 1


async def test_an_unreachable_github_is_retried_then_the_connection_error_raised(settings):
    async with aiohttp.ClientSession() as session:
        gh = RetryingGitHubAPI(session, "test", base_url=f"http://127.0.0.1:{free_port()}", retry=FAST)
        start = time.monotonic()
        with pytest.raises(aiohttp.ClientConnectionError):
            await gh.getitem("/repos/a/b")
        assert time.monotonic() - start < 5


def test_asked_wait_reads_retry_after_and_the_rate_limit_reset():
    now = 1_000_000.0
    assert asked_wait(429, {"Retry-After": "7"}, now) == 7
    limit = {"X-RateLimit-Limit": "5000", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(now) + 30)}
    assert asked_wait(403, CIMultiDict(limit), now) == pytest.approx(30)
    plain = CIMultiDict({**limit, "X-RateLimit-Remaining": "12"})
    assert asked_wait(403, plain, now) is None  # a plain 403: forbidden
    assert asked_wait(500, {}, now) is None
