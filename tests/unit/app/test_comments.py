"""A comment job in the worker: once resumed it reacts, replies and queues at most once; a GitHub
hiccup delays the command, it does not lose it."""

from __future__ import annotations

import functools
import json
import uuid

import aiohttp
import pytest

import handlers
from bot.app.comments import CommentStep, authorise_comment
from bot.app.github_api import RetryPolicy
from bot.app.github_auth import GitHubApp
from bot.app.jobs import COMMENTS_LANE, CommentJob, JobKind
from bot.app.server import make_app
from bot.core.secrets import Redactor
from tests.support.fake_github import INSTALLATION_ID, pr_comment, signed
from tests.support.waiting import until

REPO = "Codertocat/Hello-World"
FAST = RetryPolicy(attempts=5, max_delay_s=10, first_wait_s=0.01, max_wait_s=0.05)


def comment_job(fake, comment_id: int = 492700400) -> CommentJob:
    api = f"{fake.url}/repos/{REPO}"
    return CommentJob(
        repo=REPO,
        installation_id=INSTALLATION_ID,
        pr=1,
        pr_url=f"{api}/pulls/1",
        comments_url=f"{api}/issues/1/comments",
        reactions_url=f"{api}/issues/comments/{comment_id}/reactions",
        collaborators_url=f"{api}/collaborators{{/collaborator}}",
        comment_id=comment_id,
        author="Codertocat",
        association="OWNER",
        delivery_id=f"d-{comment_id}",
    )


@pytest.fixture
async def gh(settings, fake_github):
    async with aiohttp.ClientSession() as session:
        yield await GitHubApp(settings, session, retry=FAST).gh_for_installation(INSTALLATION_ID)


async def test_a_resumed_comment_job_reacts_and_queues_once(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    queue.enqueue(comment_job(fake_github))
    job = queue.claim(COMMENTS_LANE)
    first = await authorise_comment(job, gh, queue=queue, redactor=Redactor())
    again = await authorise_comment(job, gh, queue=queue, redactor=Redactor())  # a restart before it was marked done
    assert first is not None and again is None
    assert [j.kind for j in queue.jobs()] == [JobKind.COMMENT, JobKind.FIX]
    assert len(fake_github.find("POST", "/reactions")) == 1
    assert CommentStep.REACTED.value in queue.steps(job.id)


async def test_a_busy_reply_is_posted_once(gh, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    for comment_id in (1, 2):
        queue.enqueue(comment_job(fake_github, comment_id))
    first, second = queue.claim(COMMENTS_LANE), queue.claim(COMMENTS_LANE)
    await authorise_comment(first, gh, queue=queue, redactor=Redactor())
    for _ in range(2):
        await authorise_comment(second, gh, queue=queue, redactor=Redactor())
    [reply] = fake_github.find("POST", "/issues/1/comments")
    assert "<!-- fix-and-relaunch:busy -->" in reply.body["body"]


async def test_a_reply_quoting_the_payload_is_redacted(gh, fake_github, queue):
    # A branch name is the author's text: a token pasted into it must not be echoed on the PR.
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    branch = f"exp-{token}"
    fake_github.add_pull(REPO, 1, head_ref=branch, head_sha="a" * 40)
    for comment_id in (1, 2):
        queue.enqueue(comment_job(fake_github, comment_id))
    first, second = queue.claim(COMMENTS_LANE), queue.claim(COMMENTS_LANE)
    await authorise_comment(first, gh, queue=queue, redactor=Redactor([token]))
    await authorise_comment(second, gh, queue=queue, redactor=Redactor([token]))
    [reply] = fake_github.find("POST", "/issues/1/comments")
    assert token not in reply.body["body"] and "exp-" in reply.body["body"]


async def test_a_github_hiccup_delays_the_command_and_loses_nothing(aiohttp_client, settings, fake_github, queue):
    fake_github.add_pull(REPO, 1, head_ref="exp-a", head_sha="a" * 40)
    fake_github.faults = [502, 503, 500, 429]  # the token, the reaction, the pull request: each answered at last
    app = make_app(
        settings, queue=queue, router=handlers.router, wandb_handler=handlers.wandb.handle, github_retry=FAST
    )
    client = await aiohttp_client(app)
    body = json.dumps(pr_comment(fake_github.url, "/fix-and-relaunch")).encode()
    response = await client.post(
        "/webhooks/github", data=body, headers=signed(body, "issue_comment", str(uuid.uuid4()))
    )
    assert response.status == 200
    await until(lambda: any(j.kind == JobKind.FIX for j in queue.jobs()), 20, what="the fix job")
    assert len(fake_github.find("POST", "/reactions")) >= 1 and len(fake_github.reactions) == 1
    assert fake_github.faults == []


webhook_app = functools.partial(make_app, router=handlers.router, wandb_handler=handlers.wandb.handle)
