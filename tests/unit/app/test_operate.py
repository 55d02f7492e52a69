"""The operator's view of a real webhook app: the status page, GET /jobs/{id}, /metrics scraped
and parsed, and the guard in front of them (token, login cookie, localhost)."""

from __future__ import annotations

import functools
import json
import time
from dataclasses import replace
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request
from prometheus_client.parser import text_string_to_metric_families

import handlers
from bot.app import status
from bot.app.jobs import FixJob, JobKind
from bot.app.server import make_app
from bot.loop.waits import Wait
from tests.support.fake_github import pr_comment, signed
from tests.support.waiting import until

webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)
TOKEN = "status-token-for-tests-0123456789"


def fix_job(branch: str = "exp-a", pr: int = 1) -> FixJob:
    return FixJob(
        repo="Codertocat/Hello-World",
        branch=branch,
        clone_url="https://github.com/Codertocat/Hello-World.git",
        installation_id=1,
        base_repo="Codertocat/Hello-World",
        pr=pr,
    )


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def post_comment(client, fake, delivery: str) -> int:
    fake.add_pull("Codertocat/Hello-World", 1, head_ref="exp-a", head_sha="a" * 40)
    body = json.dumps(pr_comment(fake.url, "/fix-and-relaunch")).encode()
    resp = await client.post("/webhooks/github", data=body, headers=signed(body, "issue_comment", delivery))
    return resp.status


async def test_metrics_are_scraped_after_real_deliveries_and_github_calls(aiohttp_client, settings, fake_github, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue))
    assert await post_comment(client, fake_github, "d-1") == 200
    unsigned = await client.post("/webhooks/github", data=b"{}", headers={"X-GitHub-Event": "ping"})
    assert unsigned.status == 401
    ping = b'{"zen": "Keep it logically awesome."}'
    resp = await client.post("/webhooks/github", data=ping, headers=signed(ping, "ping", "d-ping"))
    assert resp.status == 200 and await resp.json() == {"ignored": "ping"}
    await until(lambda: [j for j in queue.jobs("done") if j.kind == JobKind.COMMENT], what="the comment job")
    fix = next(j for j in queue.jobs() if j.kind == JobKind.FIX)
    queue.record_step(fix.id, "target", "run-1")
    queue.record_step(fix.id, "1:decision", {"fixer": "llm", "tokens": {"input": 1200, "output": 300}, "cost_usd": 0.5})
    queue.record_step(fix.id, "1:push", "b" * 40)
    queue.record_step(fix.id, "outcome", {"action": "patched", "verified": True, "reason": None})

    resp = await client.get("/metrics")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(await resp.text())

    webhook = "fix_and_relaunch_webhooks_total"
    assert found[(webhook, (("event", "issue_comment"), ("outcome", "handled"), ("source", "github")))] == 1
    assert found[(webhook, (("event", "ping"), ("outcome", "refused"), ("source", "github")))] == 1
    assert found[(webhook, (("event", "ping"), ("outcome", "ignored"), ("source", "github")))] == 1
    assert found[("fix_and_relaunch_jobs", (("status", "done"),))] == 1  # the comment job
    assert found[("fix_and_relaunch_jobs", (("status", "queued"),))] == 1  # its fix job (no executor here)
    assert found[("fix_and_relaunch_queue_depth", ())] == 1
    # The comment worker's calls: a token, the 👀 reaction, the pull request.
    calls = found[("fix_and_relaunch_github_api_requests_total", (("method", "POST"), ("status", "2xx")))]
    assert calls >= 2
    assert found[("fix_and_relaunch_github_api_requests_total", (("method", "GET"), ("status", "2xx")))] >= 1
    assert found[("fix_and_relaunch_step_duration_seconds_count", (("step", "decision"),))] == 1
    assert found[("fix_and_relaunch_step_duration_seconds_count", (("step", "push"),))] == 1
    assert found[("fix_and_relaunch_llm_tokens_total", (("direction", "input"),))] == 1200
    assert found[("fix_and_relaunch_llm_tokens_total", (("direction", "output"),))] == 300
    assert found[("fix_and_relaunch_llm_cost_usd_total", ())] == 0.5
    assert found[("fix_and_relaunch_fix_outcomes_total", (("outcome", "verified"),))] == 1


async def test_github_errors_are_counted(aiohttp_client, settings, fake_github, queue):
    fake_github.faults = [502]  # the first call fails; the client retries it
    client = await aiohttp_client(webhook_app(settings, queue=queue))
    assert await post_comment(client, fake_github, "d-2") == 200
    await until(lambda: queue.jobs("done"), what="the comment job")
    found = samples(await (await client.get("/metrics")).text())
    assert found[("fix_and_relaunch_github_api_errors_total", (("kind", "5xx"),))] == 1


async def test_the_status_page_shows_jobs_steps_links_and_escapes_everything(aiohttp_client, settings, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue, comment_workers=0))
    running = queue.enqueue(fix_job()).job_id
    queue.claim()
    queue.record_step(running, "target", "run-1")
    queue.record_step(running, "1:decision", {"tokens": {"input": 10, "output": 5}, "cost_usd": 0.25})
    queue.record_step(running, "1:push", "c" * 40)
    queue.record_step(running, "1:run_id", "relaunch-7")
    hostile = queue.enqueue(fix_job(branch="<script>alert(1)</script>", pr=2)).job_id
    gave_up = queue.enqueue(fix_job(branch="exp-c", pr=3)).job_id
    queue.claim(lane=fix_job(branch="exp-c").lane)
    queue.record_step(gave_up, "outcome", {"action": "gave_up", "verified": False, "reason": "no safe fix"})
    queue.finish(gave_up)

    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    page = await resp.text()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f'data-job="{running}" data-status="running"' in page
    assert f'data-job="{hostile}" data-status="queued"' in page
    for step in ("target", "1:decision", "1:push", "1:run_id"):
        assert f">{step}</li>" in page
    assert 'href="https://github.com/Codertocat/Hello-World/pull/1"' in page
    assert f'href="https://github.com/Codertocat/Hello-World/commit/{"c" * 40}"' in page
    assert "run relaunch-7" in page
    assert f'data-job="{gave_up}" data-status="done"><td><a href="/jobs/{gave_up}">' in page
    assert '<div class="outcome">gave up</div>' in page
    assert "1 attempt, 10 input and 5 output LLM tokens, $0.2500" in page


async def test_a_job_parked_at_a_wait_is_on_the_status_page(aiohttp_client, settings, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue, comment_workers=0))
    parked = queue.enqueue(fix_job(branch="exp-w")).job_id
    queue.claim(lane=fix_job(branch="exp-w").lane)
    queue.park(parked, Wait(run_id="relaunch-9", target_steps=20, deadline=time.time() + 600))
    page = await (await client.get("/")).text()
    queued_section = page.split('<section id="queued">')[1].split("</section>")[0]
    assert f'data-job="{parked}" data-status="waiting"' in queued_section


async def test_a_job_as_json(aiohttp_client, settings, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue, comment_workers=0))
    job_id = queue.enqueue(fix_job()).job_id
    queue.record_step(job_id, "1:decision", {"tokens": {"input": 7, "output": 3}, "cost_usd": 0.01})
    queue.record_step(job_id, "1:push", "d" * 40)
    data = await (await client.get(f"/jobs/{job_id}")).json()
    assert data["id"] == job_id and data["status"] == "queued" and data["branch"] == "exp-a"
    assert data["commits"] == ["d" * 40] and data["attempts"] == 1
    assert data["llm"] == {"input_tokens": 7, "output_tokens": 3, "cost_usd": 0.01}
    assert [s["name"] for s in data["steps"]] == ["1:decision", "1:push"]
    assert (await client.get("/jobs/999")).status == 404
    assert (await client.get("/jobs/x")).status == 400


async def test_with_a_token_the_page_needs_it_as_bearer_or_login_cookie(aiohttp_client, settings, queue):
    guarded = replace(settings, status_token=TOKEN)
    client = await aiohttp_client(webhook_app(guarded, queue=queue, comment_workers=0))
    for path in ("/", "/metrics", "/jobs/1"):
        assert (await client.get(path)).status == 401
    browser = await client.get("/", headers={"Accept": "text/html"}, allow_redirects=False)
    assert browser.status == 303 and browser.headers["Location"] == "/login"
    assert (await client.get("/healthz")).status == 200  # probes need no token
    assert (await client.get("/", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    assert (await client.get("/", headers={"Authorization": "Bearer wrong"})).status == 401

    assert (await client.post("/login", data={"token": "wrong"})).status == 401
    login = await client.post("/login", data={"token": TOKEN}, allow_redirects=False)
    assert login.status == 303
    cookie = login.cookies[status.COOKIE]
    assert TOKEN not in cookie.value and cookie["httponly"] and cookie["samesite"] == "Strict"
    assert (await client.get("/", cookies={status.COOKIE: cookie.value})).status == 200


@pytest.mark.parametrize(
    ("remote", "token", "headers", "ok"),
    [
        ("127.0.0.1", None, {}, True),
        ("::1", None, {}, True),
        ("10.0.0.5", None, {}, False),
        ("10.0.0.5", TOKEN, {"Authorization": f"Bearer {TOKEN}"}, True),
        ("127.0.0.1", TOKEN, {}, False),  # with a token, localhost needs it too
    ],
)
def test_who_may_read_the_status_page(settings, remote, token, headers, ok):
    transport = mock.Mock()
    transport.get_extra_info.side_effect = lambda name, default=None: (remote, 1234) if name == "peername" else default
    request = make_mocked_request("GET", "/", headers=headers, transport=transport)
    assert status.allowed(request, replace(settings, status_token=token)) is ok


async def test_without_a_token_a_remote_reader_is_refused(aiohttp_client, settings, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue, comment_workers=0))
    with mock.patch.object(status, "is_loopback", return_value=False):  # the test client is local
        resp = await client.get("/")
    assert resp.status == 403 and "this host only" in await resp.text()
