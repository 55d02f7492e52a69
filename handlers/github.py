"""GitHub webhook handlers: check, authorize, enqueue, answer. The slow work runs in a worker.

Dependencies arrive as keyword arguments to `dispatch`: `queue` (bot.app.queue.Queue) and, for
closed pull requests, an optional `cleanup(repo, branch)` hook that removes the worktree (a
plain function runs in a thread, off the event loop).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from gidgethub import routing, sansio
from gidgethub.abc import GitHubAPI

from bot.app.forge import GitHubForge
from bot.app.hooks import call_hook
from bot.app.jobs import Command, FixJob
from bot.app.messages import BUSY, FORK_NOT_PUSHABLE, MARKER, NOT_ALLOWED
from bot.app.permissions import can_push, has_write_access
from bot.app.queue import EnqueueOutcome, Queue, comment_key

log = logging.getLogger(__name__)
router = routing.Router()

COMMAND = "/fix-and-relaunch"
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
    return comment["user"].get("type") == "Bot" or MARKER in (comment.get("body") or "")


@router.register("issue_comment", action="created")
async def fix_command(event: sansio.Event, gh: GitHubAPI, *args: Any, queue: Queue, **kwargs: Any) -> None:
    """`/fix-and-relaunch` on a pull request: 👀, authorize, enqueue a fix job."""
    issue, comment = event.data["issue"], event.data["comment"]
    command = parse_command(comment.get("body"))
    if command is None or "pull_request" not in issue or from_bot(comment):
        return
    if queue.seen(event.delivery_id) or queue.seen(comment_key(comment["id"])):
        return  # a redelivery, or a replay of the same comment under a new delivery id
    forge, user = GitHubForge(gh), comment["user"]["login"]
    await forge.react(comment["reactions"]["url"], "eyes")
    if not await has_write_access(gh, event.data):
        await forge.reply(issue["comments_url"], NOT_ALLOWED.format(user=user))
        return
    pr = await gh.getitem(issue["pull_request"]["url"])
    if not can_push(pr):
        await forge.reply(issue["comments_url"], FORK_NOT_PUSHABLE.format(user=user, head=pr["head"]["label"]))
        return
    result = queue.enqueue(FixJob.for_comment(event, pr, command))
    if result.outcome == EnqueueOutcome.BUSY and result.active is not None:
        active = result.active
        await forge.reply(
            issue["comments_url"], BUSY.format(user=user, branch=active.branch, status=active.status, job_id=active.id)
        )


@router.register("pull_request", action="closed")
async def drop_jobs(
    event: sansio.Event,
    gh: GitHubAPI,
    *args: Any,
    queue: Queue,
    cleanup: Callable[[str, str], Any] | None = None,
    **kwargs: Any,
) -> None:
    """A closed pull request: its branch's queued jobs are dropped and its worktree removed."""
    pr = event.data["pull_request"]
    head_repo = pr["head"].get("repo") or event.data["repository"]
    repo, branch = head_repo["full_name"], pr["head"]["ref"]
    dropped = queue.cancel_branch(repo, branch)
    log.info("PR %s closed: dropped jobs %s of %s#%s", pr["number"], dropped, repo, branch)
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


@router.register("installation", action="created")
@router.register("installation", action="deleted")
@router.register("installation", action="suspend")
@router.register("installation", action="unsuspend")
@router.register("installation_repositories", action="added")
@router.register("installation_repositories", action="removed")
async def log_installation(event: sansio.Event, gh: GitHubAPI, *args: Any, **kwargs: Any) -> None:
    installation = event.data["installation"]
    account = (installation.get("account") or {}).get("login")
    repos = [r["full_name"] for r in event.data.get("repositories") or event.data.get("repositories_added") or []]
    log.info(
        "%s %s: installation %s on %s %s", event.event, event.data.get("action"), installation["id"], account, repos
    )
