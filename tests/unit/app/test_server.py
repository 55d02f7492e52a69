"""The webhook server end to end: real aiohttp app, real gidgethub, a local fake GitHub."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import json
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import aiohttp
import jwt
import pytest

import handlers
from bot.app.github_auth import GitHubApp
from bot.app.jobs import FixJob, JobKind
from bot.app.server import make_app
from bot.core.errors import BadInput
from tests.support.fake_github import INSTALLATION_ID, WANDB_SECRET, WEBHOOK_SECRET, example, pr_comment, signed
from tests.support.net import free_port
from tests.support.paths import REPO_ROOT
from tests.support.waiting import until

# The composer's part: the app gets the request side of each webhook handed in.
webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)


@pytest.fixture
async def client(aiohttp_client, settings, queue):
    return await aiohttp_client(webhook_app(settings, queue=queue))


def command(fake, body="/fix-and-relaunch", comment_id=None, **kw) -> bytes:
    fake.add_pull("Codertocat/Hello-World", 1, head_ref="exp-a", head_sha="a" * 40)
    data = pr_comment(fake.url, body, **kw)
    if comment_id is not None:  # another comment on the same PR
        data["comment"]["id"] = comment_id
    return json.dumps(data).encode()


async def post_github(client, body: bytes, event="issue_comment", delivery=None, secret=WEBHOOK_SECRET):
    headers = signed(body, event, delivery or str(uuid.uuid4()), secret)
    return await client.post("/webhooks/github", data=body, headers=headers)


def fix_jobs(queue, status=None):
    return [j for j in queue.jobs(status) if j.kind == JobKind.FIX]


async def queued_fix(queue):
    await until(lambda: fix_jobs(queue, "queued"), what="the fix job")
    [job] = fix_jobs(queue, "queued")
    return job


async def test_signed_pr_command_is_answered_then_authorised_and_queued_by_a_worker(client, fake_github, queue):
    body = command(fake_github, "/fix-and-relaunch --dry-run the loss explodes after warmup")
    start = time.perf_counter()
    resp = await post_github(client, body, delivery="delivery-1")
    elapsed = time.perf_counter() - start
    assert resp.status == 200, await resp.text()
    assert elapsed < 1.0

    job = await queued_fix(queue)
    reactions = fake_github.find("POST", "/issues/comments/492700400/reactions")
    assert [c.body for c in reactions] == [{"content": "eyes"}]
    assert reactions[0].authorization.startswith("token ghs_")
    assert job.kind == "fix" and job.repo == "Codertocat/Hello-World" and job.branch == "exp-a"
    assert job.payload.to_json() == {
        "kind": "fix",
        "repo": "Codertocat/Hello-World",
        "base_repo": "Codertocat/Hello-World",
        "clone_url": "https://github.com/Codertocat/Hello-World.git",
        "installation_id": INSTALLATION_ID,
        "pr": 1,
        "pr_url": f"{fake_github.url}/repos/Codertocat/Hello-World/pulls/1",
        "comments_url": f"{fake_github.url}/repos/Codertocat/Hello-World/issues/1/comments",
        "branch": "exp-a",
        "head_sha": "a" * 40,
        "delivery_id": "delivery-1",
        "comment_id": 492700400,
        "dry_run": True,
        "hint": "the loss explodes after warmup",
        "requested_by": "Codertocat",
    }
    assert not any(str(v).startswith("ghs_") for v in job.payload.to_json().values())  # never a stored token
    await until(lambda: queue.jobs("done"), what="the comment job")
    assert [j.kind for j in queue.jobs("done")] == [JobKind.COMMENT]


async def test_the_request_path_makes_no_github_call(aiohttp_client, settings, fake_github, queue):
    """GitHub unreachable: every delivery is answered all the same, and queued when it asks for work."""
    offline = replace(settings, github_api_url=f"http://127.0.0.1:{free_port()}")
    client = await aiohttp_client(webhook_app(offline, queue=queue, comment_workers=0))
    plain = example("issue_comment/created.with-installation.payload.json", fake_github.url)  # on an issue
    assert (await post_github(client, json.dumps(plain).encode())).status == 200
    assert (await post_github(client, command(fake_github))).status == 200
    closed = example("pull_request/opened.payload.json", fake_github.url)
    closed["action"] = "closed"
    assert (await post_github(client, json.dumps(closed).encode(), event="pull_request")).status == 200
    assert queue.received() == 1  # no worker here admits it
    queue.admit()
    [job] = queue.jobs()
    assert job.kind == JobKind.COMMENT and job.status == "queued" and job.comment.author == "Codertocat"
    assert fake_github.calls == []


async def test_ten_identical_concurrent_deliveries_make_one_job_and_one_reaction(client, fake_github, queue):
    body = command(fake_github)
    answers = await asyncio.gather(*(post_github(client, body, delivery="same-delivery") for _ in range(10)))
    assert [a.status for a in answers] == [200] * 10
    await queued_fix(queue)
    await until(lambda: queue.jobs("done"), what="the comment job")
    assert len(queue.jobs()) == 2  # the comment, authorised, and its fix job
    assert len(fake_github.find("POST", "/reactions")) == 1


async def test_unsigned_missigned_garbage_and_oversized(client, fake_github, queue):
    body = command(fake_github)
    unsigned = {"X-GitHub-Event": "issue_comment", "X-GitHub-Delivery": "d", "Content-Type": "application/json"}
    assert (await client.post("/webhooks/github", data=body, headers=unsigned)).status == 401
    assert (await post_github(client, body, secret="not-the-secret")).status == 401
    tampered = signed(body, "issue_comment", "d2")
    assert (
        await client.post("/webhooks/github", data=body.replace(b"Codertocat", b"Mallory"), headers=tampered)
    ).status == 401
    assert (await post_github(client, b"{not json")).status == 400
    no_event = signed(body, "issue_comment", "d3")
    del no_event["X-GitHub-Event"]
    assert (await client.post("/webhooks/github", data=body, headers=no_event)).status == 400
    huge = b'{"x": "' + b"a" * (25 * 1024 * 1024) + b'"}'
    assert (await post_github(client, huge)).status == 413
    assert queue.jobs() == [] and queue.received() == 0 and fake_github.calls == []


async def test_unknown_event_is_acknowledged_and_ignored(client, fake_github, queue):
    body = json.dumps(example("ping/with-app_id.payload.json", fake_github.url)).encode()
    resp = await post_github(client, body, event="ping")
    assert resp.status == 200 and (await resp.json()) == {"ignored": "ping"}
    body = json.dumps(example("check_run/created.payload.json", fake_github.url)).encode()
    assert (await post_github(client, body, event="check_run")).status == 200
    assert fake_github.calls == [] and queue.jobs() == [] and queue.received() == 0


async def test_duplicate_delivery_makes_one_job_and_one_reaction(client, fake_github, queue):
    body = command(fake_github)
    assert (await post_github(client, body, delivery="same-delivery")).status == 200
    await queued_fix(queue)
    for _ in range(2):  # redelivered once the comment was acted on
        assert (await post_github(client, body, delivery="same-delivery")).status == 200
    assert len(queue.jobs()) == 2 and len(fix_jobs(queue)) == 1
    assert len(fake_github.find("POST", "/reactions")) == 1


async def test_replayed_comment_with_a_new_delivery_id_is_a_duplicate(client, fake_github, queue):
    """X-GitHub-Delivery is not signed: a replay of the same signed body under new ids does nothing."""
    body = command(fake_github)
    assert (await post_github(client, body, delivery="first")).status == 200
    job = await queued_fix(queue)
    queue.finish(queue.claim().id)  # even after the job is done, the comment is not acted on again
    before = [j.id for j in queue.jobs()]
    for delivery in ("replay-1", "replay-2"):
        assert (await post_github(client, body, delivery=delivery)).status == 200
    assert [j.id for j in queue.jobs()] == before and job.id in before
    assert len(fake_github.find("POST", "/reactions")) == 1 and fake_github.find("POST", "/issues/1/comments") == []


async def test_one_token_per_installation_for_many_webhooks(client, fake_github, queue):
    for comment_id in (1, 2, 3):
        await post_github(client, command(fake_github, comment_id=comment_id))
    await until(lambda: len(fake_github.find("POST", "/reactions")) == 3, what="three reactions")
    assert len(fake_github.token_requests()) == 1
    assert fake_github.token_requests()[0].path == f"/app/installations/{INSTALLATION_ID}/access_tokens"


async def test_second_trigger_while_job_runs_answers_busy(client, fake_github, queue):
    await post_github(client, command(fake_github))
    await queued_fix(queue)
    running = queue.claim()
    resp = await post_github(client, command(fake_github, "/fix-and-relaunch please", comment_id=2))
    assert resp.status == 200
    await until(lambda: fake_github.find("POST", "/issues/1/comments"), what="the reply")
    [reply] = fake_github.find("POST", "/issues/1/comments")
    assert "<!-- fix-and-relaunch:busy -->" in reply.body["body"]
    assert f"job {running.id}" in reply.body["body"] and "running" in reply.body["body"]
    assert len(fix_jobs(queue)) == 1


async def test_closed_pull_request_over_http_drops_queued_jobs(aiohttp_client, settings, fake_github, queue):
    cleaned = []
    client = await aiohttp_client(
        webhook_app(settings, queue=queue, cleanup=lambda repo, branch: cleaned.append((repo, branch)))
    )
    await post_github(client, command(fake_github))
    await queued_fix(queue)
    closed = example("pull_request/opened.payload.json", fake_github.url)
    closed["action"] = "closed"
    closed["installation"] = {"id": INSTALLATION_ID}
    closed["pull_request"]["head"]["ref"] = "exp-a"
    assert (await post_github(client, json.dumps(closed).encode(), event="pull_request")).status == 200
    assert [j.status for j in fix_jobs(queue)] == ["cancelled"]
    assert cleaned == [("Codertocat/Hello-World", "exp-a")]


async def test_cleanup_error_on_closed_pull_request_is_logged_not_a_500(
    aiohttp_client, settings, fake_github, queue, caplog
):
    def cleanup(repo, branch):
        raise OSError("disk on fire")

    client = await aiohttp_client(webhook_app(settings, queue=queue, cleanup=cleanup))
    closed = example("pull_request/opened.payload.json", fake_github.url)
    closed["action"] = "closed"
    closed["installation"] = {"id": INSTALLATION_ID}
    resp = await post_github(client, json.dumps(closed).encode(), event="pull_request")
    assert resp.status == 200 and "disk on fire" in caplog.text


def test_remove_worktree_waits_for_the_branch_runs_to_end(settings, tmp_path):
    from bot.app.server import remove_worktree
    from bot.repo.publish import clone_for_server
    from bot.repo.workspace import Workspace
    from bot.store.runs import StateStore
    from tests.support.git_repos import experiment_branch, make_origin

    origin, _ = make_origin(tmp_path, branches={"exp-a": experiment_branch("exp-a")})
    clone = clone_for_server(settings.state_dir, "Codertocat/Hello-World", f"file://{origin}")
    worktree = Workspace(clone).worktree("exp-a")
    store = StateStore.open(settings.state_dir)
    run = store.add_run(repo=str(clone.resolve()), branch="exp-a", backend="local", state="running")
    remove_worktree(settings, "Codertocat/Hello-World", "exp-a")
    assert worktree.exists(), "a running run keeps its worktree"
    store.update_run(run.id, state="failed")
    remove_worktree(settings, "Codertocat/Hello-World", "exp-a")
    assert not worktree.exists()
    remove_worktree(settings, "Some/Other-Repo", "exp-a")  # no clone: nothing to do
    store.close()


async def test_refuses_to_start_without_secret_or_app_credentials(settings, queue):
    for missing, env in (
        ("github_webhook_secret", "GITHUB_WEBHOOK_SECRET"),
        ("github_app_id", "GITHUB_APP_ID"),
        ("github_private_key", "GITHUB_PRIVATE_KEY"),
    ):
        with pytest.raises(BadInput, match=env):
            webhook_app(replace(settings, **{missing: None}), queue=queue)


async def test_healthz_reports_queue_and_workers(aiohttp_client, settings, queue, fake_github):
    async def executor(job, *, github_app, **kwargs):
        pass

    queue.enqueue(
        FixJob(repo="a/b", branch="x", clone_url="https://github.com/a/b.git", installation_id=1, delivery_id="h1")
    )
    client = await aiohttp_client(webhook_app(settings, queue=queue, executor=executor, workers=3))
    resp = await client.get("/healthz")
    data = await resp.json()
    assert resp.status == 200 and data["status"] == "ok" and data["workers"] == 3 and data["comment_workers"] == 1
    assert set(data["queue"]) == {"received", "queued", "running", "waiting", "done", "failed", "cancelled"}


async def test_workers_execute_fix_jobs_with_the_github_app(aiohttp_client, settings, queue, fake_github):
    """The worker gets the installation id, and a token only from the shared App object."""
    seen = []

    async def executor(job, *, github_app, **kwargs):
        gh = await github_app.gh_for_installation(job.fix.installation_id)
        seen.append((job.branch, gh.oauth_token))

    client = await aiohttp_client(webhook_app(settings, queue=queue, executor=executor))
    await post_github(client, command(fake_github))
    await until(lambda: seen, what="the worker")
    assert seen[0][0] == "exp-a" and seen[0][1].startswith("ghs_")
    assert len(fake_github.token_requests()) == 1  # the comment worker's token was reused


# -- W&B -------------------------------------------------------------------------------

WANDB_BODY = json.dumps({"event_type": "RUN_STATE", "entity": "team", "project": "proj", "author": "ada"}).encode()


def wandb_headers(secret=WANDB_SECRET, body=WANDB_BODY, sign=True):
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    if sign:
        headers["X-Wandb-Signature"] = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return headers


async def test_wandb_webhook_auth_and_enqueue(client, queue):
    post = client.post
    assert (
        await post("/webhooks/wandb", data=WANDB_BODY, headers=wandb_headers(secret="wrong", sign=False))
    ).status == 401
    assert (await post("/webhooks/wandb", data=WANDB_BODY, headers={"Content-Type": "application/json"})).status == 401
    bad_hmac = wandb_headers()
    bad_hmac["X-Wandb-Signature"] = hmac.new(b"other", WANDB_BODY, hashlib.sha256).hexdigest()
    assert (await post("/webhooks/wandb", data=WANDB_BODY, headers=bad_hmac)).status == 401
    assert queue.jobs() == []

    resp = await post("/webhooks/wandb", data=WANDB_BODY, headers=wandb_headers())
    assert resp.status == 200 and (await resp.json()) == {"outcome": "queued"}
    [job] = queue.jobs()
    assert job.payload.to_json() == {
        "kind": "wandb_alert",
        "entity": "team",
        "project": "proj",
        "run_path": None,
        "author": "ada",
    }
    # bearer only (no signature header) is accepted; a second alert while one waits coalesces
    resp = await post("/webhooks/wandb", data=WANDB_BODY, headers=wandb_headers(sign=False))
    assert (await resp.json()) == {"outcome": "busy"} and len(queue.jobs()) == 1


async def test_wandb_webhook_input_rules(client, aiohttp_client, settings, queue):
    garbage = b"{nope"
    assert (await client.post("/webhooks/wandb", data=garbage, headers=wandb_headers(body=garbage))).status == 400
    unfilled = json.dumps({"event_type": "RUN_STATE", "entity": "${entity_name}", "project": "p"}).encode()
    assert (await client.post("/webhooks/wandb", data=unfilled, headers=wandb_headers(body=unfilled))).status == 400
    other = json.dumps({"event_type": "ADD_ARTIFACT_ALIAS", "entity": "t", "project": "p"}).encode()
    resp = await client.post("/webhooks/wandb", data=other, headers=wandb_headers(body=other))
    assert resp.status == 200 and (await resp.json()) == {"outcome": "ignored"}
    huge = b'{"x": "' + b"a" * (25 * 1024 * 1024) + b'"}'
    assert (await client.post("/webhooks/wandb", data=huge, headers=wandb_headers(sign=False))).status == 413
    assert queue.jobs() == []

    unconfigured = await aiohttp_client(webhook_app(replace(settings, wandb_webhook_secret=None), queue=queue))
    resp = await unconfigured.post("/webhooks/wandb", data=WANDB_BODY, headers=wandb_headers())
    assert resp.status == 404


# -- App auth and the token cache -------------------------------------------------------


async def test_token_cache_until_five_minutes_before_expiry(settings, fake_github):
    now = [time.time()]
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(settings, session, clock=lambda: now[0])
        first = await app.installation_token(INSTALLATION_ID)
        now[0] += 30 * 60
        assert await app.installation_token(INSTALLATION_ID) == first
        assert len(fake_github.token_requests()) == 1
        now[0] += 26 * 60  # 4 minutes before the hour is up: refresh
        second = await app.installation_token(INSTALLATION_ID)
        assert second != first and len(fake_github.token_requests()) == 2
        other = await app.installation_token(7)
        assert other not in (first, second) and len(fake_github.token_requests()) == 3

        fake_github.token_ttl = 60  # GitHub hands out a token that is nearly spent: not cached
        app = GitHubApp(settings, session)
        await app.installation_token(INSTALLATION_ID)
        await app.installation_token(INSTALLATION_ID)
        assert len(fake_github.token_requests()) == 5


def test_app_jwt_is_signed_once_and_reused_for_five_minutes(settings, app_key):
    now = [time.time()]
    app = GitHubApp(settings, session=None, clock=lambda: now[0])  # type: ignore[arg-type]
    first = app.jwt()
    now[0] += 4 * 60
    assert app.jwt() is first, "reused, not signed again"
    now[0] += 2 * 60
    renewed = app.jwt()
    assert renewed is not first
    claims = jwt.decode(renewed, app_key.public_key(), algorithms=["RS256"])
    assert claims["iss"] == settings.github_app_id and claims["exp"] - time.time() > 8 * 60


async def test_app_jwt_is_signed_with_the_private_key(settings, fake_github, app_key):
    async with aiohttp.ClientSession() as session:
        assert await GitHubApp(settings, session).installation_for_repo("Codertocat/Hello-World") == INSTALLATION_ID
    from tests.support.fake_github import make_settings, rsa_private_key

    wrong = make_settings(fake_github, rsa_private_key(), settings.state_dir)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(Exception, match="401|JSON web token"):
            await GitHubApp(wrong, session).installation_token(INSTALLATION_ID)


def test_app_manifest_subscribes_to_what_the_handlers_need():
    import yaml

    from bot.app.server import APP_EVENTS

    manifest = yaml.safe_load((REPO_ROOT / "app.yml").read_text())
    assert manifest["public"] is False and manifest["hook_attributes"]["url"].endswith("/webhooks/github")
    routed = set(handlers.router._deep_routes) | set(handlers.router._shallow_routes)
    assert routed - APP_EVENTS == set(manifest["default_events"])  # installation events come to every App
    assert manifest["default_permissions"] == {
        "contents": "write",
        "issues": "write",
        "pull_requests": "write",
        "checks": "write",
        "metadata": "read",
    }


async def test_a_repos_installation_is_asked_again_after_a_while(settings, fake_github):
    """An App reinstalled (or a repo transferred) gets a new installation id."""
    from bot.app.github_auth import INSTALLATION_TTL

    now = [1_000_000.0]
    async with aiohttp.ClientSession() as session:
        app = GitHubApp(settings, session, clock=lambda: now[0])
        assert await app.installation_for_repo("Codertocat/Hello-World") == INSTALLATION_ID
        fake_github.installations["Codertocat/Hello-World"] = 99
        assert await app.installation_for_repo("Codertocat/Hello-World") == INSTALLATION_ID  # cached
        now[0] += INSTALLATION_TTL + 1
        assert await app.installation_for_repo("Codertocat/Hello-World") == 99
    assert len(fake_github.find("GET", "/installation")) == 2


def test_the_app_never_imports_the_handlers():
    """handlers/ sits beside bot.app: only the composer (the serve command, the tests) brings them in."""
    code = (
        "import sys, bot.app.server, bot.app.alerts, bot.app.executor; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'handlers'))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize(
    "env, message",
    [
        ({"GITHUB_APP_ID": "my-app"}, "GITHUB_APP_ID must be the App's numeric id"),
        (
            {"GITHUB_PRIVATE_KEY": "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----"},
            "not a usable RSA private key",
        ),
        ({"GITHUB_WEBHOOK_SECRET": ""}, "needs GITHUB_WEBHOOK_SECRET"),
        ({"GITHUB_WEBHOOK_SECRET": "short"}, "GITHUB_WEBHOOK_SECRET is 5 characters long"),
        ({"FIX_AND_RELAUNCH_WORKERS": "lots"}, "FIX_AND_RELAUNCH_WORKERS must be a whole number from 1 to 64"),
    ],
    ids=["app-id", "private-key", "no-secret", "short-secret", "workers"],
)
def test_serve_refuses_to_start_with_a_clear_message(settings, app_key, tmp_path, env, message):
    """Found at start-up (exit 2, one line, nothing quoted of the key), not at the first webhook."""
    import os

    from tests.support.fake_github import pem

    base = {
        **os.environ,
        "GITHUB_APP_ID": settings.github_app_id,
        "GITHUB_PRIVATE_KEY": pem(app_key),
        "GITHUB_WEBHOOK_SECRET": settings.github_webhook_secret,
        "FIX_AND_RELAUNCH_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "bot", "serve", "--port", str(free_port())],
        env={**base, **env},
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "not a key" not in done.stderr and "Traceback" not in done.stderr
