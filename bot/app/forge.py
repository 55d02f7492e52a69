"""Reporting on the forge: one comment per job, edited as the job moves; a check run per pushed commit.

`GitHubForge` speaks to GitHub through gidgethub with the URLs found in payloads
(`comments_url`, a comment's `url`, `reactions.url`); the messages themselves are in
`bot.app.messages`. Offline, the command line prints the report instead.
"""

from __future__ import annotations

from typing import Any

from gidgethub.abc import GitHubAPI

CHECK_NAME = "fix-and-relaunch"


def repo_url_vars(repo: str) -> tuple[str, dict[str, str]]:
    """`owner/repo` or a repository API URL, as a URL template and its variables."""
    if "://" in repo:
        return repo.rstrip("/") + "/check-runs", {}
    owner, name = repo.split("/", 1)
    return "/repos/{owner}/{repo}/check-runs", {"owner": owner, "repo": name}


def check_run_body(head_sha: str, status: str, conclusion: str | None, title: str, summary: str) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": CHECK_NAME,
        "head_sha": head_sha,
        "status": status,
        "output": {"title": title, "summary": summary},
    }
    if status == "completed":
        body["conclusion"] = conclusion or "neutral"
    return body


class GitHubForge:
    def __init__(self, gh: GitHubAPI) -> None:
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

    async def create_check_run(
        self,
        repo: str,
        head_sha: str,
        status: str = "completed",
        conclusion: str | None = None,
        title: str = "",
        summary: str = "",
    ) -> dict[str, Any]:
        url, url_vars = repo_url_vars(repo)
        return await self.gh.post(url, url_vars, data=check_run_body(head_sha, status, conclusion, title, summary))

    async def react(self, reactions_url: str, content: str) -> dict[str, Any]:
        return await self.gh.post(reactions_url, data={"content": content})

    async def reply(self, comments_url: str, body: str) -> dict[str, Any]:
        return await self.gh.post(comments_url, data={"body": body})
