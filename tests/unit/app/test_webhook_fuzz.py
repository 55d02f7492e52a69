"""A bounded fuzz of both webhook endpoints: 2,000 seeded requests of garbage — headers of any
bytes, bodies that are not JSON objects, payloads with required fields dropped or retyped —
get 0 answers of 5xx, make 0 jobs and log no traceback."""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import hmac
import json
import logging
import random
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

import handlers
from bot.app.bodies import BodyLimits
from bot.app.server import make_app
from tests.support.fake_github import WANDB_SECRET, WEBHOOK_SECRET, example, pr_comment
from tests.support.raw_http import request_head, send

REQUESTS = 2000
SEED = 20240612
webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)

# Fields a `/fix-and-relaunch` comment cannot do without: breaking one must never make a job.
REQUIRED = [
    "installation",
    "installation.id",
    "repository",
    "repository.full_name",
    "repository.collaborators_url",
    "issue",
    "issue.number",
    "issue.comments_url",
    "issue.pull_request.url",
    "comment",
    "comment.id",
    "comment.user",
    "comment.user.login",
    "comment.reactions",
    "comment.reactions.url",
]
EVENTS = ["issue_comment", "pull_request", "installation", "installation_repositories", "ping", "push"]


def sign(body: bytes, secret: str = WEBHOOK_SECRET) -> bytes:
    return b"sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest().encode()


class Garbage:
    """Seeded makers of one bad request each: (head, body)."""

    def __init__(self, rng: random.Random, api: str):
        self.rng = rng
        self.command = pr_comment(api, "/fix-and-relaunch")
        self.closed = example("pull_request/opened.payload.json", api) | {"action": "closed"}

    def any_bytes(self, n: int) -> bytes:
        return bytes(self.rng.randrange(256) for _ in range(n))

    def header_bytes(self) -> bytes:
        """A header value no endpoint accepts: non-ASCII, non-UTF-8, or ASCII with a space, a quote
        or a brace in it (no CR or LF: the request must stay one request)."""
        choice = self.rng.random()
        if choice < 0.3:
            return "sha256=é".encode() + b"0" * self.rng.randrange(70)
        if choice < 0.6:
            return bytes(self.rng.choice(range(0x80, 0x100)) for _ in range(self.rng.randrange(1, 80)))
        ascii_junk = bytes(self.rng.choice([*range(0x21, 0x7F), 0x09]) for _ in range(self.rng.randrange(0, 80)))
        cut = self.rng.randrange(len(ascii_junk) + 1)
        return ascii_junk[:cut] + self.rng.choice([b'"', b"{", b"\xc3"]) + ascii_junk[cut:]

    def json_value(self, depth: int = 0) -> Any:
        kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 4 else [])
        kind = self.rng.choice(kinds)
        if kind == "list":
            return [self.json_value(depth + 1) for _ in range(self.rng.randrange(4))]
        if kind == "dict":
            return {self.rng.choice(["id", "url", "x", "body", "user"]): self.json_value(depth + 1) for _ in range(3)}
        return {
            "null": None,
            "bool": self.rng.random() < 0.5,
            "int": self.rng.randrange(-(2**40), 2**40),
            "float": self.rng.random() * 1e6,
            "str": "".join(self.rng.choice('ab/é\\"{}[]') for _ in range(self.rng.randrange(12))),
        }[kind]

    def broken_command(self) -> dict[str, Any]:
        """The command payload with one to three required fields dropped, nulled or retyped."""
        data = copy.deepcopy(self.command)
        for path in self.rng.sample(REQUIRED, self.rng.randrange(1, 4)):
            *parents, last = path.split(".")
            target: Any = data
            for part in parents:
                target = target.get(part) if isinstance(target, dict) else None
            if not isinstance(target, dict):
                continue
            how = self.rng.random()
            if how < 0.3:
                target.pop(last, None)
            elif how < 0.45:
                target[last] = None
            else:
                current = target.get(last)
                wrong = self.json_value()
                while type(wrong) is type(current) or wrong is None:
                    wrong = self.json_value()
                target[last] = wrong
        return data

    def body_not_an_object(self) -> bytes:
        return self.rng.choice(
            [
                lambda: self.any_bytes(self.rng.randrange(1, 300)),
                lambda: json.dumps(self.json_value()).encode() if self.rng.random() < 0.5 else b"null",
                lambda: b"[" * self.rng.randrange(1000, 60_000),
                lambda: b'{"a":' * self.rng.randrange(1000, 30_000) + b"1" + b"}" * 10,
                lambda: b'{"x": "' + self.any_bytes(40) + b'"}',
                lambda: b"\xef\xbb\xbf{}",  # a BOM
                lambda: b"1" * 5000,  # an integer past Python's digit limit
            ]
        )()

    # -- the requests ----------------------------------------------------------------------

    def github(self, body: bytes, *, event: bytes = b"issue_comment", **headers: bytes) -> tuple[bytes, bytes]:
        base = {
            b"X-GitHub-Event": event,
            b"X-GitHub-Delivery": f"fuzz-{self.rng.randrange(10**9)}".encode(),
            b"Content-Type": b"application/json",
            b"X-Hub-Signature-256": sign(body),
        }
        base.update({k.replace("_", "-").encode(): v for k, v in headers.items()})
        return request_head("POST", "/webhooks/github", list(base.items()), len(body)), body

    def wandb(self, body: bytes, authorization: bytes | None = None, **headers: bytes) -> tuple[bytes, bytes]:
        base = {b"Authorization": authorization or f"Bearer {WANDB_SECRET}".encode()}
        base.update({k.replace("_", "-").encode(): v for k, v in headers.items()})
        return request_head("POST", "/webhooks/wandb", list(base.items()), len(body)), body

    def makers(self) -> list[Callable[[], tuple[bytes, bytes]]]:
        command = json.dumps(self.command).encode()
        return [
            lambda: self.github(command, X_Hub_Signature_256=self.header_bytes()),
            lambda: self.github(command, X_Hub_Signature_256=sign(command, "not-the-secret-at-all")),
            lambda: self.github(command, X_GitHub_Event=self.header_bytes()),
            lambda: self.github(command, X_GitHub_Delivery=self.header_bytes()),
            lambda: self.github(command, Content_Type=self.rng.choice([b"text/plain", b"\xff/json", b"multipart/x"])),
            lambda: self.github(
                json.dumps(self.broken_command()).encode(), Content_Type=b"application/json; charset=\xff-bogus"
            ),
            lambda: self.github(self.body_not_an_object()),
            lambda: self.github(json.dumps(self.broken_command()).encode()),
            lambda: self.github(json.dumps(self.broken_command()).encode()),
            lambda: self.github(json.dumps({"action": self.json_value(), **self.broken_command()}).encode()),
            lambda: self.github(
                json.dumps({"action": "closed", "pull_request": self.json_value()}).encode(), event=b"pull_request"
            ),
            lambda: self.github(
                json.dumps({"action": "created", "installation": self.json_value()}).encode(), event=b"installation"
            ),
            lambda: self.github(
                json.dumps({"action": self.rng.choice(["created", "closed"]), "x": self.json_value()}).encode(),
                event=self.rng.choice(EVENTS).encode(),
            ),
            lambda: self.wandb(json.dumps(self.json_value()).encode(), authorization=b"Bearer " + self.header_bytes()),
            lambda: self.wandb(self.body_not_an_object()),
            lambda: self.wandb(
                json.dumps(
                    {
                        "event_type": self.rng.choice(["RUN_FAILED", "RUN_STATE", None, 3]),
                        "entity": self.json_value(),
                        "project": self.json_value(),
                        "run_path": self.json_value(),
                    }
                ).encode()
            ),
            lambda: self.wandb(b"{}", X_Wandb_Signature=self.header_bytes()),
        ]


@pytest.fixture
async def port(aiohttp_server, settings, queue):
    # No worker: what the request side queued stays visible; a GitHub that is not there.
    limits = BodyLimits(timeout_s=5.0)
    server = await aiohttp_server(webhook_app(settings, queue=queue, comment_workers=0, body_limits=limits))
    return server.port


async def test_two_thousand_garbage_requests_get_no_5xx_and_make_no_job(port, fake_github, queue, caplog):
    rng = random.Random(SEED)
    makers = Garbage(rng, fake_github.url).makers()
    requests = [rng.choice(makers)() for _ in range(REQUESTS)]
    statuses: Counter[int | None] = Counter()
    pending = iter(requests)

    async def client() -> None:
        for head, body in pending:
            answer = await send(port, head, body, timeout=15)
            statuses[answer.status] += 1

    with caplog.at_level(logging.INFO):
        await asyncio.gather(*(client() for _ in range(8)))

    print("statuses:", dict(statuses))
    assert sum(statuses.values()) == REQUESTS
    assert not [s for s in statuses if s is None or s >= 500], statuses
    assert queue.jobs() == [] and queue.received() == 0, "garbage made a job"
    assert fake_github.calls == [], "the request side called GitHub"
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"
    refused = [r for r in caplog.records if r.name == "bot.app.server"]
    assert len(refused) <= sum(n for s, n in statuses.items() if s and 400 <= s < 500)  # one line each at most
    assert statuses[400] > 500 and statuses[401] > 200  # the fuzz reached the payload checks, not only the door
