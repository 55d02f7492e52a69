"""W&B failure alerts, in the worker: from an alert to one fix job per failed run.

W&B automation payloads carry no run id, only what its payload variables give. Configure the
webhook automation ("Run state" event, state Failed/Crashed) with `WANDB_PAYLOAD_TEMPLATE`;
a sender that knows the run may add `"run_path": "entity/project/runid"`. The request side
(handlers/wandb.py) only enqueues an `AlertJob`.

`resolve_wandb_alert` lists the project's recently failed runs (newest first, bounded), skips
those already handled, maps each to its repo (git remote), branch (config key, else the PR of
its commit) and open PR, and enqueues one fix job per run. Runs without an open PR are
skipped: the bot only fixes PR branches.

A run's git remote is written by whoever ran it, so it only names a repo: a run whose remote
is not on the GitHub the App talks to is skipped, and the URL the bot clones and pushes to
(with its installation token) is always the one GitHub gives.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import gidgethub
from gidgethub.abc import GitHubAPI

from bot.app.hooks import call_hook
from bot.app.jobs import RUN_EVENTS, WANDB_PAYLOAD_TEMPLATE, AlertJob, FixJob, Job, JobStatus
from bot.app.permissions import can_push
from bot.app.queue import EnqueueOutcome, Queue
from bot.core.errors import OperationFailed
from bot.core.settings import Settings
from bot.runs.model import FAILED_STATES

__all__ = [
    "RUN_EVENTS",
    "WANDB_PAYLOAD_TEMPLATE",
    "Skipped",
    "failed_runs",
    "find_pr",
    "git_host",
    "on_github",
    "place_run",
    "protected_branches",
    "repo_from_remote",
    "resolve_wandb_alert",
    "runs_lookup",
]

log = logging.getLogger(__name__)

LOOKUP_LIMIT = 20
DEFAULT_BRANCH_KEY = "branch"
_REMOTE = re.compile(
    r"^(?:(?P<scheme>[a-z+]+)://)?(?:[^@/]+@)?(?P<host>[^/:]+)(?::\d+)?[:/](?P<repo>[^/]+/[^/]+?)(?:\.git)?/?$"
)

# A failed run, as the lookup describes it: id, path, state, commit, remote, config.
RunDescription = dict[str, Any]
RunsLookup = Callable[[str, str], "Iterable[RunDescription] | Awaitable[Iterable[RunDescription]]"]
GhFactory = Callable[[str], Awaitable[tuple[GitHubAPI, int]]]


# -- what W&B knows: the project's recently failed runs ------------------------------------


def runs_lookup(settings: Settings) -> Callable[[str, str], list[RunDescription]]:
    """`lookup(entity, project)` for resolve_wandb_alert (blocking; run in a thread)."""

    def lookup(entity: str, project: str) -> list[RunDescription]:
        return failed_runs(settings, entity, project)

    return lookup


def failed_runs(settings: Settings, entity: str, project: str, *, limit: int = LOOKUP_LIMIT) -> list[RunDescription]:
    if not settings.wandb_api_key:
        raise OperationFailed("a W&B alert needs WANDB_API_KEY to look up the failed runs")
    import wandb  # slow to import: only when an alert comes

    overrides = {"entity": entity, **({"base_url": settings.wandb_base_url} if settings.wandb_base_url else {})}
    api = wandb.Api(api_key=settings.wandb_api_key, overrides=overrides, timeout=30)
    runs = api.runs(
        f"{entity}/{project}", filters={"state": {"$in": list(FAILED_STATES)}}, order="-created_at", per_page=limit
    )
    return [_describe(run) for run in itertools.islice(runs, limit)]


def _describe(run: Any) -> RunDescription:
    meta = run.metadata or {}
    git = meta.get("git") or {}
    return {
        "id": run.id,
        "path": "/".join(run.path),
        "state": run.state,
        "commit": run.commit or git.get("commit"),
        "remote": git.get("remote") or meta.get("remote"),
        "config": {k: v for k, v in run.config.items() if not k.startswith("_")},
    }


# -- from an alert to fix jobs ---------------------------------------------------------------


@dataclass(frozen=True)
class Skipped:
    """A run that gets no fix job. A permanent reason (it is not on GitHub, it ran on main) is
    remembered so later alerts pass it by; otherwise (no PR yet, app not installed) the next
    alert looks again."""

    permanent: bool = False


def skip(run: RunDescription, message: str, *args: Any, permanent: bool = False) -> Skipped:
    log.info("W&B run %s: " + message + ", skipped", run["path"], *args)
    return Skipped(permanent)


async def resolve_wandb_alert(
    alert: AlertJob,
    *,
    runs_lookup: RunsLookup,
    gh_factory: GhFactory,
    jobs: Queue,
    github_api_url: str,
    branch_key: str = DEFAULT_BRANCH_KEY,
) -> list[Job]:
    """Enqueue a fix job for each failed, not yet handled run of the alert's project.

    `runs_lookup(entity, project)` returns run descriptions (a plain or async function).
    `gh_factory("owner/repo")` returns `(gh, installation_id)`. `github_api_url`
    (settings.github_api_url) says which git host a run's remote must name. Returns the fix
    jobs that were queued. Runs that cannot be placed are skipped with a log line.
    """
    runs = await call_hook(runs_lookup, alert.entity, alert.project)
    failed = [r for r in runs if str(r.get("state", "")).lower() in FAILED_STATES]
    if alert.run_path and not any(r.get("path") == alert.run_path for r in failed):
        log.info(
            "alert names %s, which is not among the failed runs of %s/%s", alert.run_path, alert.entity, alert.project
        )
    queued = []
    for run in failed:
        if jobs.seen_run(run["path"]):
            continue
        fix = await place_run(run, gh_factory=gh_factory, github_api_url=github_api_url, branch_key=branch_key)
        if isinstance(fix, Skipped):
            if fix.permanent:
                jobs.mark_run(run["path"])
            continue
        result = jobs.enqueue(fix)  # BUSY: the run is not marked handled; the next alert tries again
        log.info("W&B run %s -> %s#%s: %s", run["path"], fix.repo, fix.branch, result.outcome)
        if result.outcome == EnqueueOutcome.QUEUED and result.job_id is not None:
            queued.append(Job(id=result.job_id, status=JobStatus.QUEUED, payload=fix))
    return queued


async def place_run(
    run: RunDescription, *, gh_factory: GhFactory, github_api_url: str, branch_key: str
) -> FixJob | Skipped:
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
        return skip(
            run, "no open PR for branch %r or commit %s; the bot only fixes PR branches", branch, run.get("commit")
        )
    if pr["head"]["ref"] in protected_branches(github_repo, pr):
        return skip(run, "%s is the default or base branch of %s", pr["head"]["ref"], repo, permanent=True)
    if not can_push(pr):
        return skip(run, "PR #%s comes from %s, which the app may not push to", pr["number"], pr["head"]["label"])
    return FixJob.for_failed_run(run, pr, installation_id)


def protected_branches(repo: dict[str, Any], pr: dict[str, Any]) -> set[str]:
    """Branches an alert never fixes: the repo's default branch and the PR's base (and the head repo's default)."""
    head_repo = pr["head"].get("repo") or {}
    return {b for b in (repo.get("default_branch"), pr["base"]["ref"], head_repo.get("default_branch")) if b}


async def find_pr(gh: GitHubAPI, repo: str, branch: str | None, commit: str | None) -> dict[str, Any] | None:
    """The open PR of the run: by its commit (commits/{sha}/pulls), else by its branch."""
    owner, name = repo.split("/", 1)
    if commit:
        pulls: list[dict[str, Any]] = await gh.getitem(
            "/repos/{owner}/{repo}/commits/{sha}/pulls", {"owner": owner, "repo": name, "sha": commit}
        )
        open_pulls = [p for p in pulls if p.get("state") == "open" and (branch is None or p["head"]["ref"] == branch)]
        if open_pulls:
            return open_pulls[0]
    if branch:
        pulls = await gh.getitem(
            "/repos/{owner}/{repo}/pulls{?state,head}",
            {"owner": owner, "repo": name, "state": "open", "head": f"{owner}:{branch}"},
        )
        open_pulls = [p for p in pulls if p.get("state") == "open" and p["head"]["ref"] == branch]
        if open_pulls:
            return open_pulls[0]
    return None


# -- where a run's code lives ----------------------------------------------------------------


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
