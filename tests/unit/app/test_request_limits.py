"""The request side never answers 5xx and never lets a client hold it: headers are checked before
the body is read, bodies have a cap, a deadline and a budget, and each refusal is one log line."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import uuid

import pytest

import handlers
from bot.app.bodies import BodyLimits
from bot.app.server import make_app
from tests.support.fake_github import WANDB_SECRET, example, pr_comment, signed
from tests.support.raw_http import request_head, send

webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)
LIMITS = BodyLimits(max_bytes=1024 * 1024, timeout_s=1.0, budget_bytes=2 * 1024 * 1024)
BIG = 24 * 1024 * 1024


@pytest.fixture
async def port(aiohttp_server, settings, queue):
    server = await aiohttp_server(webhook_app(settings, queue=queue, comment_workers=0, body_limits=LIMITS))
    return server.port


def github_head(body: bytes, *, content_length: int | None = None, **overrides: bytes) -> bytes:
    headers = {k.encode(): v.encode() for k, v in signed(body, "issue_comment", str(uuid.uuid4())).items()}
    headers.update({k.replace("_", "-").encode(): v for k, v in overrides.items()})
    size = len(body) if content_length is None else content_length
    return request_head("POST", "/webhooks/github", list(headers.items()), size)


def wandb_head(authorization: bytes, content_length: int) -> bytes:
    headers = [(b"Authorization", authorization), (b"Content-Type", b"application/json")]
    return request_head("POST", "/webhooks/wandb", headers, content_length)


@pytest.mark.parametrize(
    "header",
    [None, b"sha1=abc", b"sha256=" + b"0" * 63, "sha256=é".encode() + b"0" * 62, b"sha256=\xff\xfe" + b"0" * 62],
    ids=["missing", "sha1", "short", "non-ascii", "non-utf8"],
)
async def test_a_missing_or_malformed_signature_is_refused_before_the_body_is_read(port, header, queue):
    headers = [(b"X-GitHub-Event", b"issue_comment"), (b"X-GitHub-Delivery", b"d-1")]
    headers += [(b"Content-Type", b"application/json")]
    if header is not None:
        headers.append((b"X-Hub-Signature-256", header))
    # 24 MB announced, none sent: only an answer that does not read the body can come back.
    answer = await send(port, request_head("POST", "/webhooks/github", headers, BIG), timeout=5)
    assert answer.status == 401 and answer.elapsed < 1 and answer.closed
    assert queue.jobs() == [] and queue.received() == 0


async def test_a_client_still_sending_its_refused_body_reads_the_answer(port, queue):
    # It sends its whole body before it reads: the server must not close on the unread bytes
    # (a reset, and the 401 lost with it) but drop them, then close.
    headers = [(b"X-GitHub-Event", b"issue_comment"), (b"X-GitHub-Delivery", b"d-2")]
    headers += [(b"Content-Type", b"application/json")]
    body = b"x" * (8 * 1024 * 1024)
    answer = await send(port, request_head("POST", "/webhooks/github", headers, len(body)), body, timeout=5)
    assert answer.status == 401 and answer.closed
    assert queue.jobs() == [] and queue.received() == 0


@pytest.mark.parametrize(
    "authorization",
    [b"", b"Basic abc", b"Bearer", b"Bearer \xff\xfe\xfd-not-utf8", "Bearer é-non-ascii".encode(), b"Bearer wrong"],
    ids=["empty", "basic", "no-token", "non-utf8", "non-ascii", "wrong"],
)
async def test_a_bad_bearer_token_is_refused_before_the_body_is_read(port, authorization):
    answer = await send(port, wandb_head(authorization, BIG), timeout=5)
    assert answer.status == 401 and answer.elapsed < 1 and answer.closed


async def test_a_body_over_the_cap_is_refused_from_its_length(port):
    answer = await send(port, github_head(b"{}", content_length=LIMITS.max_bytes + 1), timeout=5)
    assert answer.status == 413 and answer.closed


async def test_a_slow_body_is_cut_off_at_the_deadline(port):
    body = json.dumps({"zen": "x" * 5000}).encode()
    answer = await send(port, github_head(body), body, stall_after=100, timeout=10)
    assert answer.status == 408 and answer.closed
    assert LIMITS.timeout_s <= answer.elapsed < LIMITS.timeout_s + 2


async def test_bodies_in_flight_are_capped(port):
    """Two stalled bodies hold the budget: a third waits for room, then gets a 429, not memory."""
    size = LIMITS.budget_bytes // 2
    body = b"x" * size
    held = [asyncio.create_task(send(port, github_head(body), body, stall_after=10, timeout=10)) for _ in range(2)]
    await asyncio.sleep(0.2)
    third = await send(port, github_head(body), body, stall_after=10, timeout=10)
    assert third.status == 429 and third.closed
    assert [a.status for a in await asyncio.gather(*held)] == [408, 408]


@pytest.mark.parametrize(
    "body, content_type, status",
    [
        (b"{not json", "application/json", 400),
        (b"null", "application/json", 400),
        (b"[1, 2]", "application/json", 400),
        (b'"text"', "application/json", 400),
        (b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
        (b'{"zen": "\xff\xfe"}', "application/json", 400),
        (b'{"zen": "ok"}', "application/json; charset=bogus-charset", 200),
        (b'{"zen": "ok"}', "application/x-www-form-urlencoded", 415),
        (b'{"action": ["created"]}', "application/json", 400),
    ],
    ids=["not-json", "null", "array", "string", "nested", "not-utf8", "bogus-charset", "form", "action-list"],
)
async def test_a_signed_body_that_is_not_a_json_object_is_a_400_with_one_log_line(
    port, body, content_type, status, caplog
):
    head = github_head(body, Content_Type=content_type.encode())
    with caplog.at_level(logging.INFO):
        answer = await send(port, head, body, timeout=10)
    assert answer.status == status
    refusals = [r for r in caplog.records if r.name == "bot.app.server"]
    assert len(refusals) == (0 if status == 200 else 1)
    assert not any(r.exc_info for r in caplog.records), "no traceback"


def comment_data(api: str) -> dict:
    return pr_comment(api, "/fix-and-relaunch")


@pytest.mark.parametrize(
    "path, value",
    [
        ("installation", None),
        ("installation.id", "1"),
        ("comment.id", True),
        ("comment.user.login", 42),
        ("comment.reactions", []),
        ("comment.body", {"text": "/fix-and-relaunch"}),
        ("issue.number", "1"),
        ("issue.pull_request.url", None),
        ("issue.comments_url", 3.5),
        ("repository", "Codertocat/Hello-World"),
        ("repository.collaborators_url", ["x"]),
        ("comment", "a comment"),
    ],
)
async def test_a_command_missing_a_field_or_with_one_of_the_wrong_type_is_a_400(port, fake_github, queue, path, value):
    data = comment_data(fake_github.url)
    *parents, last = path.split(".")
    target = data
    for part in parents:
        target = target[part]
    if value is None:
        del target[last]
    else:
        target[last] = value
    body = json.dumps(data).encode()
    answer = await send(port, github_head(body), body, timeout=10)
    assert answer.status == 400
    assert queue.jobs() == [] and queue.received() == 0


async def test_events_the_bot_does_not_act_on_are_a_200_whatever_their_shape(port, queue):
    for event, data in (("ping", {"zen": 1}), ("check_run", {"action": "created", "check_run": None})):
        body = json.dumps(data).encode()
        answer = await send(port, github_head(body, X_GitHub_Event=event.encode()), body, timeout=10)
        assert answer.status == 200
    plain = example("issue_comment/created.with-installation.payload.json", "http://127.0.0.1:9")
    plain["comment"]["body"] = "/fix-and-relaunch"  # on an issue, not a pull request: ignored
    body = json.dumps(plain).encode()
    assert (await send(port, github_head(body), body, timeout=10)).status == 200
    assert queue.jobs() == [] and queue.received() == 0


async def test_a_wandb_body_of_the_wrong_shape_is_a_400(port, queue):
    for data in (None, [], {"event_type": ["RUN_FAILED"]}, {"event_type": "RUN_FAILED", "entity": 3, "project": "p"}):
        body = json.dumps(data).encode()
        head = wandb_head(f"Bearer {WANDB_SECRET}".encode(), len(body))
        answer = await send(port, head, body, timeout=10)
        assert answer.status in (200, 400), data
        assert answer.status == (200 if isinstance(data, dict) and not isinstance(data.get("entity"), int) else 400)
    assert queue.jobs() == [] and queue.received() == 0
