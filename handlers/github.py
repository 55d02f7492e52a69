"""GitHub webhook handlers, the request side: check the payload's shape and record the job in the
queue's inbox (a worker admits it: dedupe, lanes). No handler calls GitHub: the 👀 reaction, the
permission check, the pull request and every reply happen in a worker (bot.app.comments), so a
delivery is answered in milliseconds whatever GitHub's state, and the handlers are dispatched
with `gh=None`.

Dependencies arrive as keyword arguments to `dispatch`: `queue` (bot.app.queue.Queue),
`receive` (bot.app.group_commit: records a payload in the queue's inbox, one commit per burst of
deliveries, and answers False for a redelivery this process recorded lately) and,
for closed pull requests, an optional `cleanup(repo, branch)` hook that removes the worktree (a
plain function runs in a thread, off the event loop). A payload missing a field a handler
needs, or carrying one of the wrong type, raises BadPayload: the server answers 400.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.app.hooks import call_hook
from bot.app.jobs import Command, CommentJob, ConfigCheckJob
from bot.app.messages import MARKER
from bot.app.queue import Queue
from handlers.payloads import at, maybe

log = logging.getLogger(__name__)
router = routing.Router()
Receive = Callable[[CommentJob | ConfigCheckJob], Awaitable[bool]]  # False: a redelivery, not recorded again

COMMAND = "/fix-and-relaunch"
# In the raw body of any comment naming the command: JSON may escape the "/", never the letters.
COMMAND_BYTES = COMMAND.removeprefix("/").encode()
DRY_RUN = re.compile(r"(?<!\S)--dry-run(?!\S)")


def parse_command(body: str | None) -> Command | None:
    """`/fix-and-relaunch [--dry-run] [free-text hint]` at the start of a comment, else None."""
    text = (body or "").lstrip()
    if not text.startswith(COMMAND):
        return None
    rest = text[len(COMMAND) :]
    if rest and not rest[0].isspace():
        return None
    hint, flags = DRY_RUN.subn("", rest)
    return Command(dry_run=flags > 0, hint=hint.strip() or None)


def from_bot(comment: dict[str, Any]) -> bool:
    """The bot's own messages, and other bots', are never commands."""
    return maybe(comment, "user.type", str) == "Bot" or MARKER in (maybe(comment, "body", str) or "")


def command_comment(event: sansio.Event) -> CommentJob | None:
    """The comment job of a `/fix-and-relaunch` comment on a pull request; None for any other comment."""
    data = event.data
    body = maybe(data, "comment.body", str)
    command = parse_command(body)
    if command is None or maybe(data, "issue.pull_request", dict) is None or from_bot(at(data, "comment", dict)):
        return None
    return CommentJob(
        repo=at(data, "repository.full_name", str),
        installation_id=at(data, "installation.id", int),
        pr=at(data, "issue.number", int),
        pr_url=at(data, "issue.pull_request.url", str),
        comments_url=at(data, "issue.comments_url", str),
        reactions_url=at(data, "comment.reactions.url", str),
        collaborators_url=at(data, "repository.collaborators_url", str),
        comment_id=at(data, "comment.id", int),
        author=at(data, "comment.user.login", str),
        association=maybe(data, "comment.author_association", str) or "NONE",
        delivery_id=event.delivery_id,
        dry_run=command.dry_run,
        hint=command.hint,
    )


@router.register("issue_comment", action="created")
async def fix_command(event: sansio.Event, gh: GitHubAPI | None, *args: Any, receive: Receive, **kwargs: Any) -> None:
    """`/fix-and-relaunch` on a pull request: record it; a worker admits it (a redelivery, or the
    same comment under a new delivery id, is a duplicate), reacts, authorises it and queues the fix."""
    comment = command_comment(event)
    if comment is None:
        return
    outcome = "received" if await receive(comment) else "a duplicate"
    log.info("comment %s on %s#%s: %s", comment.comment_id, comment.repo, comment.pr, outcome)


@router.register("pull_request", action="closed")
async def drop_jobs(
    event: sansio.Event,
    gh: GitHubAPI | None,
    *args: Any,
    queue: Queue,
    cleanup: Callable[[str, str], Any] | None = None,
    **kwargs: Any,
) -> None:
    """A closed pull request: its branch's queued jobs are dropped and its worktree removed."""
    data = event.data
    head_repo = maybe(data, "pull_request.head.repo", dict) or at(data, "repository", dict)
    repo, branch = at(head_repo, "full_name", str), at(data, "pull_request.head.ref", str)
    dropped = queue.cancel_branch(repo, branch)
    log.info("PR %s closed: dropped jobs %s of %s#%s", maybe(data, "pull_request.number", int), dropped, repo, branch)
    if cleanup is not None:
        await remove_worktree(cleanup, queue, repo, branch)


async def remove_worktree(cleanup: Callable[[str, str], Any], queue: Queue, repo: str, branch: str) -> None:
    """Run the clean-up hook off the event loop, unless a job still works on the branch; errors are logged."""
    active = queue.active_job(repo, branch)
    if active is not None:
        log.info(
            "%s#%s keeps its worktree: job %s is still %s (it stops at its next step)",
            repo,
            branch,
            active.id,
            active.status,
        )
        return
    try:
        await call_hook(cleanup, repo, branch)
    except Exception:
        log.exception("clean-up of %s#%s failed; the worktree stays", repo, branch)


@router.register("pull_request", action="opened")
@router.register("pull_request", action="synchronize")
@router.register("pull_request", action="reopened")
async def check_config(event: sansio.Event, gh: GitHubAPI | None, *args: Any, receive: Receive, **kwargs: Any) -> None:
    """A pull request's new head: a worker checks its repo config (when the pull request edits it)
    and posts a check run (bot.app.checks)."""
    data = event.data
    base_repo = at(data, "repository.full_name", str)
    head_repo = maybe(data, "pull_request.head.repo.full_name", str) or base_repo
    job = ConfigCheckJob(
        repo=base_repo,
        head_repo=head_repo,
        head_sha=at(data, "pull_request.head.sha", str),
        pr=at(data, "pull_request.number", int),
        installation_id=at(data, "installation.id", int),
        delivery_id=event.delivery_id,
    )
    outcome = "received" if await receive(job) else "a duplicate"
    log.info("PR %s#%s head %s: config check %s", base_repo, job.pr, job.head_sha[:10], outcome)


@router.register("installation", action="created")
@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
@router.register("installation", action="unsuspend")
@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def log_installation(event: sansio.Event, gh: GitHubAPI | None, *args: Any, **kwargs: Any) -> None:
    data = event.data
    listed = maybe(data, "repositories", list) or maybe(data, "repositories_added", list) or []
    repos = [r.get("full_name") for r in listed if isinstance(r, dict)]
    log.info(
        "%s %s: installation %s on %s %s",
        event.event,
        maybe(data, "action", str),
        at(data, "installation.id", int),
        maybe(data, "installation.account.login", str),
        repos,
    )
