"""Reporting on the forge: one comment per job, edited as the job moves; a check run per pushed commit.

`GitHubForge` speaks to GitHub through gidgethub with the URLs found in payloads
(`comments_url`, a comment's `url`, `reactions.url`). Offline, the command line prints the
report instead.
"""
from __future__ import annotations

from typing import Any

CHECK_NAME = "fix-and-relaunch"
JOB_MARKER = "<!-- fix-and-relaunch:job={job_id} -->"

# The job comment's first body, posted when a worker picks the job up. Later bodies (fix
# pushed, relaunched, verified, gave up) are rendered by bot.loop.report and delivered through
# `upsert_comment` under the same job marker, so the one comment is edited in place.
DIAGNOSING = """\
{marker}
🔎 **fix-and-relaunch** is diagnosing the latest failed run of `{branch}`…
"""


def job_marker(job_id: int | str) -> str:
    return JOB_MARKER.format(job_id=job_id)


def repo_url_vars(repo: str) -> tuple[str, dict[str, str]]:
    """`owner/repo` or a repository API URL, as a URL template and its variables."""
    if "://" in repo:
        return repo.rstrip("/") + "/check-runs", {}
    owner, name = repo.split("/", 1)
    return "/repos/{owner}/{repo}/check-runs", {"owner": owner, "repo": name}


def check_run_body(head_sha: str, status: str, conclusion: str | None, title: str, summary: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": CHECK_NAME, "head_sha": head_sha, "status": status,
                            "output": {"title": title, "summary": summary}}
    if status == "completed":
        body["conclusion"] = conclusion or "neutral"
    return body


class GitHubForge:
    def __init__(self, gh):
        self.gh = gh
        self._comment_urls: dict[str, str] = {}

    async def upsert_comment(self, comments_url: str, job_marker: str, body: str) -> dict[str, Any]:
        """Edit the comment carrying `job_marker`, or create it; the body gets the marker."""
        if job_marker not in body:
            body = f"{job_marker}\n{body}"
        url = self._comment_urls.get(job_marker) or await self._find_comment(comments_url, job_marker)
        if url:
            comment = await self.gh.patch(url, data={"body": body})
        else:
            comment = await self.gh.post(comments_url, data={"body": body})
        self._comment_urls[job_marker] = comment["url"]
        return comment

    async def _find_comment(self, comments_url: str, job_marker: str) -> str | None:
        async for comment in self.gh.getiter(comments_url):
            if job_marker in (comment.get("body") or ""):
                return comment["url"]
        return None

    async def create_check_run(self, repo: str, head_sha: str, status: str = "completed",
                               conclusion: str | None = None, title: str = "", summary: str = "") -> dict[str, Any]:
        url, url_vars = repo_url_vars(repo)
        return await self.gh.post(url, url_vars, data=check_run_body(head_sha, status, conclusion, title, summary))

    async def react(self, reactions_url: str, content: str) -> dict[str, Any]:
        return await self.gh.post(reactions_url, data={"content": content})

    async def reply(self, comments_url: str, body: str) -> dict[str, Any]:
        return await self.gh.post(comments_url, data={"body": body})
