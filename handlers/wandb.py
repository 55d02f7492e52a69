"""W&B automation webhooks: enqueue an alert; the executor later finds the failed runs it means.

W&B automation payloads carry no run id, only what its payload variables give. Configure the
webhook automation ("Run state" event, state Failed/Crashed) with this payload:

    {"event_type": "${event_type}", "entity": "${entity_name}", "project": "${project_name}",
     "author": "${event_author}"}

A sender that knows the run may add `"run_path": "entity/project/runid"`. Authentication: the
webhook's access token is WANDB_WEBHOOK_SECRET (W&B sends `Authorization: Bearer <token>`);
an `X-Wandb-Signature` (hex HMAC-SHA256 of the body with the same secret) is checked when present.

`handle` runs in the request and only enqueues a `wandb_alert` job. `resolve_wandb_alert` runs
in a worker: it lists the project's failed runs, skips those already handled, maps each to
its repo (git remote), branch (config key, else the PR of its commit) and open PR, and enqueues
one fix job per run. Runs without an open PR are skipped: the bot only fixes PR branches.

A run's git remote is written by whoever ran it, so it only names a repo: a run whose remote
is not on the GitHub the App talks to is skipped, and the URL the bot clones and pushes to
(with its installation token) is always the one GitHub gives.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterable
from urllib.parse import urlsplit

import gidgethub

from bot.runs.model import FAILED_STATES
from handlers.github import call_hook, can_push

log = logging.getLogger(__name__)

WANDB_PAYLOAD_TEMPLATE = (
    '{"event_type": "${event_type}", "entity": "${entity_name}", '
    '"project": "${project_name}", "author": "${event_author}"}'
)
RUN_EVENTS = frozenset({"RUN_STATE", "RUN_STATE_CHANGED", "RUN_FAILED"})
DEFAULT_BRANCH_KEY = "branch"
_REMOTE = re.compile(r"^(?:(?P<scheme>[a-z+]+)://)?(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?[:/](?P<repo>[^/]+/[^/]+?)(?:\.git)?/?$")

RunsLookup = Callable[[str, str], "Iterable[dict[str, Any]] | Awaitable[Iterable[dict[str, Any]]]"]
GhFactory = Callable[[str], Awaitable[tuple[Any, int]]]


class BadPayload(ValueError):
    """The body is JSON but not a usable W&B alert; the server answers 400."""


@dataclass(frozen=True)
class Skipped:
    """A run that gets no fix job. A permanent reason (it is not on GitHub, it ran on main) is
    remembered so later alerts pass it by; otherwise (no PR yet, app not installed) the next
    alert looks again."""

    permanent: bool = False


def skip(run: dict[str, Any], message: str, *args: Any, permanent: bool = False) -> Skipped:
    log.info("W&B run %s: " + message + ", skipped", run["path"], *args)
    return Skipped(permanent)


def alert_job(payload: Any) -> dict[str, Any] | None:
    """The `wandb_alert` job for a payload, None for events we do not act on."""
    if not isinstance(payload, dict):
        raise BadPayload("the payload must be a JSON object")
    if payload.get("event_type") not in RUN_EVENTS:
        return None
    entity, project, run_path = payload.get("entity"), payload.get("project"), payload.get("run_path")
    for name, value in (("entity", entity), ("project", project)):
        if not isinstance(value, str) or not value.strip() or "$" in value:
            raise BadPayload(f"'{name}' must name the W&B {name} (payload template: {WANDB_PAYLOAD_TEMPLATE})")
    if run_path is not None and (not isinstance(run_path, str) or run_path.count("/") != 2):
        raise BadPayload("'run_path' must look like entity/project/runid")
    return {"kind": "wandb_alert", "entity": entity.strip(), "project": project.strip(),
            "run_path": run_path, "author": payload.get("author")}


def handle(payload: Any, *, queue) -> str:
    """Enqueue the alert: "queued", "busy" (one already waits), or "ignored"."""
    job = alert_job(payload)
    if job is None:
        return "ignored"
    return queue.enqueue(job).outcome


# -- in the worker: from an alert to fix jobs --------------------------------------------


def repo_from_remote(remote: str | None) -> tuple[str, str] | None:
    """`(host, owner/repo)` of a git remote URL (https, ssh or scp-like), credentials dropped."""
    match = _REMOTE.match((remote or "").strip())
    if not match:
        return None
    return match["host"], match["repo"]


def git_host(api_url: str) -> str:
    """The git host of the GitHub behind an API URL.

    https://api.github.com -> github.com; https://api.octo.ghe.com -> octo.ghe.com;
    https://ghe.example.com/api/v3 (GitHub Enterprise Server) -> ghe.example.com;
    anything else (a local test server) -> its own host.
    """
    parts = urlsplit(api_url)
    host = (parts.hostname or "").lower()
    if parts.path.rstrip("/").startswith("/api/"):
        return host
    return host.removeprefix("api.")


def on_github(host: str, api_url: str, repo: dict[str, Any]) -> bool:
    """Whether a run's remote host is the GitHub the App talks to: the host of its API URL, or the
    host of the `clone_url` that GitHub itself gives for the repo."""
    host = host.lower()
    return host == git_host(api_url) or host == (urlsplit(repo.get("clone_url") or "").hostname or "").lower()


async def resolve_wandb_alert(job, *, runs_lookup: RunsLookup, gh_factory: GhFactory, jobs, github_api_url: str,
                              branch_key: str = DEFAULT_BRANCH_KEY) -> list[dict[str, Any]]:
    """Enqueue a fix job for each failed, not yet handled run of the alert's project.

    `runs_lookup(entity, project)` returns dicts with id, path, state, commit, remote, config
    (a plain or async function). `gh_factory("owner/repo")` returns `(gh, installation_id)`.
    `github_api_url` (settings.github_api_url) says which git host a run's remote must name.
    Returns the fix jobs that were queued. Runs that cannot be placed are skipped with a log line.
    """
    runs = await call_hook(runs_lookup, job["entity"], job["project"])
    failed = [r for r in runs if str(r.get("state", "")).lower() in FAILED_STATES]
    if job.get("run_path") and not any(r.get("path") == job["run_path"] for r in failed):
        log.info("alert names %s, which is not among the failed runs of %s/%s",
                 job["run_path"], job["entity"], job["project"])
    queued = []
    for run in failed:
        if jobs.seen_run(run["path"]):
            continue
        fix = await place_run(run, gh_factory=gh_factory, github_api_url=github_api_url, branch_key=branch_key)
        if isinstance(fix, Skipped):
            if fix.permanent:
                jobs.mark_run(run["path"])
            continue
        result = jobs.enqueue(fix)  # "busy": the run is not marked handled; the next alert tries again
        log.info("W&B run %s -> %s#%s: %s", run["path"], fix["repo"], fix["branch"], result.outcome)
        if result.outcome == "queued":
            queued.append({**fix, "job_id": result.job_id})
    return queued


async def place_run(run: dict[str, Any], *, gh_factory: GhFactory, github_api_url: str,
                    branch_key: str) -> dict[str, Any] | Skipped:
    """The fix job for a failed run, or Skipped (logged) when it cannot or may not be fixed.

    Only the head branch of an open PR is fixed, never the repo's default branch or the PR's
    base, and a fork only when the installation may push to it (the comment handler's rule).
    """
    where = repo_from_remote(run.get("remote"))
    if where is None:
        return skip(run, "no usable git remote (%r)", run.get("remote"), permanent=True)
    host, repo = where
    try:
        gh, installation_id = await gh_factory(repo)
        owner, name = repo.split("/", 1)
        github_repo = await gh.getitem("/repos/{owner}/{repo}", {"owner": owner, "repo": name})
    except gidgethub.HTTPException as exc:
        return skip(run, "the app is not installed on %s (%s)", repo, exc)
    if not on_github(host, github_api_url, github_repo):
        return skip(run, "its remote is on %s, not on the GitHub at %s", host, github_api_url, permanent=True)
    branch = (run.get("config") or {}).get(branch_key)
    pr = await find_pr(gh, repo, branch if isinstance(branch, str) else None, run.get("commit"))
    if pr is None:
        return skip(run, "no open PR for branch %r or commit %s; the bot only fixes PR branches",
                    branch, run.get("commit"))
    if pr["head"]["ref"] in protected_branches(github_repo, pr):
        return skip(run, "%s is the default or base branch of %s", pr["head"]["ref"], repo, permanent=True)
    if not can_push(pr):
        return skip(run, "PR #%s comes from %s, which the app may not push to", pr["number"], pr["head"]["label"])
    return fix_job(run, pr, installation_id)


def protected_branches(repo: dict[str, Any], pr: dict[str, Any]) -> set[str]:
    """Branches an alert never fixes: the repo's default branch and the PR's base (and the head repo's default)."""
    head_repo = pr["head"].get("repo") or {}
    return {b for b in (repo.get("default_branch"), pr["base"]["ref"], head_repo.get("default_branch")) if b}


def fix_job(run: dict[str, Any], pr: dict[str, Any], installation_id: int) -> dict[str, Any]:
    head = pr["head"]
    return {
        "kind": "fix",
        "repo": head["repo"]["full_name"],
        "base_repo": pr["base"]["repo"]["full_name"],
        "clone_url": head["repo"]["clone_url"],
        "installation_id": installation_id,
        "pr": pr["number"],
        "pr_url": pr["url"],
        "comments_url": pr["comments_url"],
        "branch": head["ref"],
        "head_sha": run.get("commit"),
        "run_id": run.get("id"),
        "run_path": run["path"],
        "delivery_id": None,
        "dry_run": False,
        "hint": None,
        "requested_by": "wandb",
    }


async def find_pr(gh, repo: str, branch: str | None, commit: str | None) -> dict[str, Any] | None:
    """The open PR of the run: by its commit (commits/{sha}/pulls), else by its branch."""
    owner, name = repo.split("/", 1)
    if commit:
        pulls = await gh.getitem("/repos/{owner}/{repo}/commits/{sha}/pulls",
                                 {"owner": owner, "repo": name, "sha": commit})
        open_pulls = [p for p in pulls if p.get("state") == "open" and (branch is None or p["head"]["ref"] == branch)]
        if open_pulls:
            return open_pulls[0]
    if branch:
        pulls = await gh.getitem("/repos/{owner}/{repo}/pulls{?state,head}",
                                 {"owner": owner, "repo": name, "state": "open", "head": f"{owner}:{branch}"})
        open_pulls = [p for p in pulls if p.get("state") == "open" and p["head"]["ref"] == branch]
        if open_pulls:
            return open_pulls[0]
    return None
