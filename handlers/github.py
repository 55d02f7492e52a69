"""GitHub webhook handlers: check, authorize, enqueue, answer. The slow work runs in the pipeline.

Dependencies arrive as keyword arguments to `dispatch`: `queue` (bot.app.queue.Queue) and, for
closed pull requests, an optional `cleanup(repo, branch)` hook that removes the worktree (a
plain function runs in a thread, off the event loop).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import re
from dataclasses import dataclass
from typing import Any, Callable

import gidgethub
from gidgethub import routing

from bot.app.forge import GitHubForge
from bot.app.queue import comment_key

log = logging.getLogger(__name__)
router = routing.Router()

COMMAND = "/fix-and-relaunch"
MARKER = "<!-- fix-and-relaunch:"  # every message of the bot carries one
# OWNER is the account that owns the repository. MEMBER (any org member) and COLLABORATOR
# (read and triage included) say nothing about write access: those ask the permission endpoint.
TRUSTED_ASSOCIATIONS = frozenset({"OWNER"})
WRITE_PERMISSIONS = frozenset({"admin", "maintain", "write"})
DRY_RUN = re.compile(r"(?<!\S)--dry-run(?!\S)")

NOT_ALLOWED = """\
<!-- fix-and-relaunch:not-allowed -->
@{user} only people with write access to this repository can run `/fix-and-relaunch`.
"""
FORK_NOT_PUSHABLE = """\
<!-- fix-and-relaunch:fork -->
@{user} I can't push to `{head}`: this pull request comes from a fork that does not allow edits \
by maintainers. Tick "Allow edits by maintainers" on the pull request and ask again.
"""
BUSY = """\
<!-- fix-and-relaunch:busy -->
@{user} a fix-and-relaunch job for `{branch}` is already {status} (job {job_id}); \
it will report here. Ask again when it is done.
"""


@dataclass(frozen=True)
class Command:
    dry_run: bool = False
    hint: str | None = None


def parse_command(body: str | None) -> Command | None:
    """`/fix-and-relaunch [--dry-run] [free-text hint]` at the start of a comment, else None."""
    text = (body or "").lstrip()
    if not text.startswith(COMMAND):
        return None
    rest = text[len(COMMAND):]
    if rest and not rest[0].isspace():
        return None
    hint, flags = DRY_RUN.subn("", rest)
    return Command(dry_run=flags > 0, hint=hint.strip() or None)


def from_bot(comment: dict[str, Any]) -> bool:
    return comment["user"].get("type") == "Bot" or MARKER in (comment.get("body") or "")


async def has_write_access(gh, data: dict[str, Any]) -> bool:
    comment = data["comment"]
    if comment.get("author_association") in TRUSTED_ASSOCIATIONS:
        return True
    url = data["repository"]["collaborators_url"] + "/permission"
    try:
        answer = await gh.getitem(url, {"collaborator": comment["user"]["login"]})
    except gidgethub.BadRequest:  # 404: not a collaborator at all
        return False
    return answer.get("permission") in WRITE_PERMISSIONS


def can_push(pr: dict[str, Any]) -> bool:
    """Same-repo branches, or forks the installation may push to."""
    head_repo = pr["head"].get("repo")
    if head_repo is None:  # the fork was deleted
        return False
    if head_repo["full_name"] == pr["base"]["repo"]["full_name"]:
        return True
    return bool(pr.get("maintainer_can_modify") or (head_repo.get("permissions") or {}).get("push"))


def fix_job(event, pr: dict[str, Any], command: Command) -> dict[str, Any]:
    data = event.data
    head = pr["head"]
    return {
        "kind": "fix",
        "repo": head["repo"]["full_name"],
        "base_repo": data["repository"]["full_name"],
        "clone_url": head["repo"]["clone_url"],
        "installation_id": data["installation"]["id"],
        "pr": pr["number"],
        "pr_url": pr["url"],
        "comments_url": data["issue"]["comments_url"],
        "branch": head["ref"],
        "head_sha": head["sha"],
        "delivery_id": event.delivery_id,
        "comment_id": data["comment"]["id"],
        "dry_run": command.dry_run,
        "hint": command.hint,
        "requested_by": data["comment"]["user"]["login"],
    }


@router.register("issue_comment", action="created")
async def fix_command(event, gh, *args, queue, **kwargs):
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
    result = queue.enqueue(fix_job(event, pr, command))
    if result.outcome == "busy":
        active = result.active
        await forge.reply(issue["comments_url"], BUSY.format(user=user, branch=active.branch,
                                                             status=active.status, job_id=active.id))


@router.register("pull_request", action="closed")
async def drop_jobs(event, gh, *args, queue, cleanup=None, **kwargs):
    """A closed pull request: its branch's queued jobs are dropped and its worktree removed."""
    pr = event.data["pull_request"]
    head_repo = pr["head"].get("repo") or event.data["repository"]
    repo, branch = head_repo["full_name"], pr["head"]["ref"]
    dropped = queue.cancel_branch(repo, branch)
    log.info("PR %s closed: dropped jobs %s of %s#%s", pr["number"], dropped, repo, branch)
    if cleanup is not None:
        await remove_worktree(cleanup, queue, repo, branch)


async def call_hook(func: Callable, *args: Any) -> Any:
    """Await an async hook; run a plain (blocking) one in a thread, off the event loop."""
    if inspect.iscoroutinefunction(func):
        return await func(*args)
    return await asyncio.to_thread(func, *args)


async def remove_worktree(cleanup, queue, repo: str, branch: str) -> None:
    """Run the clean-up hook off the event loop, unless a job still works on the branch; errors are logged."""
    active = queue.active_job(repo, branch)
    if active is not None:
        log.info("%s#%s keeps its worktree: job %s is still %s (it stops at its next step)",
                 repo, branch, active.id, active.status)
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
async def log_installation(event, gh, *args, **kwargs):
    installation = event.data["installation"]
    account = (installation.get("account") or {}).get("login")
    repos = [r["full_name"] for r in event.data.get("repositories") or event.data.get("repositories_added") or []]
    log.info("%s %s: installation %s on %s %s", event.event, event.data.get("action"), installation["id"], account, repos)
