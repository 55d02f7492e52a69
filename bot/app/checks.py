"""The repo config's check run: a pull request that edits `.github/fix-and-relaunch.yml` gets a
`fix-and-relaunch config` check run on its head commit listing every problem of the file as
committed there (with the organisation defaults it `_extends`, fetched through the App), each
on its line, or saying the file is valid.

A worker runs it (`ConfigCheckJob`, queued by the `pull_request` handler): the request path makes
no GitHub call.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from typing import Any

from gidgethub import BadRequest
from gidgethub.abc import GitHubAPI

from bot.app.jobs import ConfigCheckJob
from bot.repo import config as repo_config
from bot.repo.config import Base, ConfigProblem

log = logging.getLogger(__name__)

CHECK_NAME = "fix-and-relaunch config"
MAX_ANNOTATIONS = 50  # GitHub takes at most 50 per request


@dataclass(frozen=True)
class ConfigCheck:
    """What the check found: the problems, and whether the file was there at all."""

    problems: list[ConfigProblem]
    extends: repo_config.Extends | None

    @property
    def conclusion(self) -> str:
        return "failure" if self.problems else "success"


async def file_text(gh: GitHubAPI, repo: str, path: str, ref: str | None = None) -> str | None:
    """A file's text from GitHub's contents API (at `ref`, else the default branch); None when absent."""
    owner, name = repo.split("/", 1)
    url = "/repos/{owner}/{repo}/contents/{+path}" + ("{?ref}" if ref else "")
    try:
        found = await gh.getitem(url, {"owner": owner, "repo": name, "path": path, "ref": ref or ""})
    except BadRequest as exc:
        if exc.status_code == 404:
            return None
        raise
    if not isinstance(found, dict) or found.get("type") != "file":
        return None
    return base64.b64decode(found.get("content") or "").decode("utf-8", "replace")


async def extended_base(gh: GitHubAPI, text: str, owner: str) -> tuple[repo_config.Extends | None, Base | None]:
    """The file the config's `_extends` names, fetched through the App; (None, None) when it names none."""
    extends = repo_config.extends_of(text, owner)
    if extends is None:
        return None, None
    base_text = await file_text(gh, extends.repo, extends.path)
    return extends, None if base_text is None else Base(base_text, extends.source)


async def edits_config(gh: GitHubAPI, job: ConfigCheckJob) -> bool:
    owner, name = job.repo.split("/", 1)
    url = "/repos/{owner}/{repo}/pulls/{number}/files"
    async for changed in gh.getiter(url, {"owner": owner, "repo": name, "number": str(job.pr)}):
        if repo_config.CONFIG_PATH in (changed.get("filename"), changed.get("previous_filename")):
            return changed.get("status") != "removed"
    return False


async def check_config(gh: GitHubAPI, job: ConfigCheckJob) -> ConfigCheck:
    text = await file_text(gh, job.head_repo, repo_config.CONFIG_PATH, ref=job.head_sha) or ""
    extends, base = await extended_base(gh, text, job.head_repo.split("/", 1)[0])
    problems = repo_config.check(text, base=base)
    if extends is not None and base is None:
        problems.append(
            ConfigProblem(
                repo_config.CONFIG_PATH,
                repo_config.EXTENDS_KEY,
                f"names {extends.source}, which the App cannot read (no such file, or the App is not "
                f"installed on {extends.repo})",
            )
        )
    return ConfigCheck(problems, extends)


def check_run(job: ConfigCheckJob, found: ConfigCheck) -> dict[str, Any]:
    """The check run's body: title, a summary listing every problem, and an annotation for each
    problem of the pull request's own file that has a line."""
    count = len(found.problems)
    title = f"{count} problem{'s' if count != 1 else ''} in {repo_config.CONFIG_PATH}" if count else "valid"
    inherits = f" (with the defaults of `{found.extends.source}`)" if found.extends else ""
    summary = (
        f"`{repo_config.CONFIG_PATH}` at {job.head_sha[:10]}{inherits}:\n\n"
        + ("\n".join(f"- `{p}`" for p in found.problems) if count else "no problems.")
        + "\n\nCheck it locally with `fix-and-relaunch check-config`."
    )
    annotations = [
        {
            "path": repo_config.CONFIG_PATH,
            "start_line": p.line,
            "end_line": p.line,
            "annotation_level": "failure",
            "message": f"'{p.path}' {p.message}" if p.path else p.message,
        }
        for p in found.problems
        if p.line and p.source == repo_config.CONFIG_PATH
    ][:MAX_ANNOTATIONS]
    return {
        "name": CHECK_NAME,
        "head_sha": job.head_sha,
        "status": "completed",
        "conclusion": found.conclusion,
        "output": {"title": title, "summary": summary, "annotations": annotations},
    }


async def run_config_check(gh: GitHubAPI, job: ConfigCheckJob) -> ConfigCheck | None:
    """Post the check run when the pull request edits the config; None when it does not."""
    if not await edits_config(gh, job):
        log.info("PR %s#%s does not edit %s: no config check", job.repo, job.pr, repo_config.CONFIG_PATH)
        return None
    found = await check_config(gh, job)
    owner, name = job.repo.split("/", 1)
    await gh.post("/repos/{owner}/{repo}/check-runs", {"owner": owner, "repo": name}, data=check_run(job, found))
    log.info("PR %s#%s config check: %s (%d problems)", job.repo, job.pr, found.conclusion, len(found.problems))
    return found
