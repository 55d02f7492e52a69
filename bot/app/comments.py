"""A `/fix-and-relaunch` comment, in the worker: 👀, who asked, which branch, then its fix job.

The request side only queued a `CommentJob`; every GitHub call happens here, through the
retrying GitHubAPI, so a GitHub hiccup delays a command instead of losing it. Each effect on
the pull request (the reaction, a reply) is journaled under the comment job, and its fix job is
deduped by the comment job: a comment job resumed after a restart reacts, replies and queues
at most once.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from gidgethub.abc import GitHubAPI

from bot.app.forge import GitHubForge
from bot.app.jobs import FixJob, Job
from bot.app.messages import BUSY, FORK_NOT_PUSHABLE, NOT_ALLOWED, render
from bot.app.permissions import can_push, has_write_access
from bot.app.queue import EnqueueOutcome, Queue
from bot.core.secrets import Redactor

log = logging.getLogger(__name__)


class CommentStep(str, Enum):
    """What a comment job did on the pull request, journaled in the queue's job steps."""

    REACTED = "comment:reacted"
    REPLIED = "comment:replied"


async def authorise_comment(job: Job, gh: GitHubAPI, *, queue: Queue, redactor: Redactor) -> FixJob | None:
    """React, check the author may write, look the pull request up and queue its fix job.

    Returns the fix job queued, or None (not allowed, a fork the bot cannot push to, or the
    branch busy: each answered on the pull request, redacted: a branch name is the author's text)."""
    comment = job.comment
    forge = GitHubForge(gh)
    await _once(queue, job, CommentStep.REACTED, lambda: forge.react(comment.reactions_url, "eyes"))
    if not await has_write_access(gh, comment.collaborators_url, comment.author, comment.association):
        await _reply(queue, job, forge, render(NOT_ALLOWED, redactor, user=comment.author))
        return None
    pr: dict[str, Any] = await gh.getitem(comment.pr_url)
    if not can_push(pr):
        fork = render(FORK_NOT_PUSHABLE, redactor, user=comment.author, head=pr["head"]["label"])
        await _reply(queue, job, forge, fork)
        return None
    fix = FixJob.for_comment(comment, pr)
    result = queue.enqueue(fix, source=job.id)
    if result.outcome == EnqueueOutcome.BUSY and result.active is not None:
        active = result.active
        busy = render(BUSY, redactor, user=comment.author, branch=active.branch, status=active.status, job_id=active.id)
        await _reply(queue, job, forge, busy)
        return None
    log.info(
        "comment %s on %s#%s: %s job %s", comment.comment_id, comment.repo, comment.pr, result.outcome, result.job_id
    )
    return fix if result.outcome == EnqueueOutcome.QUEUED else None


async def _reply(queue: Queue, job: Job, forge: GitHubForge, body: str) -> None:
    await _once(queue, job, CommentStep.REPLIED, lambda: forge.reply(job.comment.comments_url, body))


async def _once(queue: Queue, job: Job, step: CommentStep, effect: Callable[[], Awaitable[Any]]) -> None:
    """Run `effect` unless the step is journaled; journal it once done."""
    if step.value in queue.steps(job.id):
        return
    await effect()
    queue.record_step(job.id, step.value, True)
