"""A comment that does not name the command is acknowledged without being parsed (as `serve`
composes the app); one that does is parsed and queued."""

from __future__ import annotations

import functools
import json
import uuid

import handlers
from bot.app.server import make_app
from tests.support.fake_github import pr_comment, signed

webhook_app = functools.partial(
    make_app, router=handlers.router, wandb_handler=handlers.wandb.handle, act_only_if=handlers.ACT_ONLY_IF
)


async def test_only_a_body_naming_the_command_is_parsed(aiohttp_client, settings, fake_github, queue):
    client = await aiohttp_client(webhook_app(settings, queue=queue, comment_workers=0))

    async def post(body: bytes) -> dict:
        response = await client.post(
            "/webhooks/github", data=body, headers=signed(body, "issue_comment", str(uuid.uuid4()))
        )
        assert response.status == 200
        return await response.json()

    assert await post(b"not even JSON, and no command") == {"ignored": "issue_comment"}
    assert await post(json.dumps(pr_comment(fake_github.url, "LGTM")).encode()) == {"ignored": "issue_comment"}
    assert (await post(json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()))["handled"]
    assert queue.received() == 1  # no worker here admits it
    assert [p.kind for p, _ in queue.admit()] == ["comment"] and [j.kind for j in queue.jobs()] == ["comment"]
