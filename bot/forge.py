"""Reporting on the forge: one comment per job, edited as the job moves; a check run per pushed commit.

`GitHubForge` speaks to GitHub through gidgethub with the URLs found in payloads
(`comments_url`, a comment's `url`, `reactions.url`). `LocalForge` records the same calls
in memory and can print them as markdown, for the offline command line.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, TextIO

CHECK_NAME = "fix-and-relaunch"
JOB_MARKER = "<!-- fix-and-relaunch:job={job_id} -->"

# The job comment's first body, posted when a worker picks the job up. Later bodies (fix
# pushed, relaunched, verified, gave up) are rendered by bot.report and delivered through
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

    async def update_check_run(self, check_run_url: str, status: str, conclusion: str | None = None,
                               title: str = "", summary: str = "") -> dict[str, Any]:
        body = check_run_body("", status, conclusion, title, summary)
        del body["head_sha"], body["name"]
        return await self.gh.patch(check_run_url, data=body)

    async def react(self, reactions_url: str, content: str) -> dict[str, Any]:
        return await self.gh.post(reactions_url, data={"content": content})

    async def reply(self, comments_url: str, body: str) -> dict[str, Any]:
        return await self.gh.post(comments_url, data={"body": body})


@dataclass
class LocalForge:
    """The forge for offline use: remembers every call, optionally prints the markdown."""

    out: TextIO | None = None
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    comments: dict[str, str] = field(default_factory=dict)  # marker -> latest body
    check_runs: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def printing(cls) -> "LocalForge":
        return cls(out=sys.stderr)

    def _print(self, text: str) -> None:
        if self.out is not None:
            print(text, file=self.out)

    async def upsert_comment(self, comments_url: str | None, job_marker: str, body: str) -> dict[str, Any]:
        if job_marker not in body:
            body = f"{job_marker}\n{body}"
        edited = job_marker in self.comments
        self.comments[job_marker] = body
        self.calls.append(("upsert_comment", {"comments_url": comments_url, "marker": job_marker,
                                              "body": body, "edited": edited}))
        self._print(body)
        return {"url": f"local:{job_marker}", "body": body}

    async def create_check_run(self, repo: str, head_sha: str, status: str = "completed",
                               conclusion: str | None = None, title: str = "", summary: str = "") -> dict[str, Any]:
        run = {"repo": repo, **check_run_body(head_sha, status, conclusion, title, summary)}
        self.check_runs.append(run)
        self.calls.append(("create_check_run", run))
        self._print(f"check run {CHECK_NAME} on {head_sha[:12]}: {run.get('conclusion') or status} — {title}")
        return {"url": f"local:check-run/{len(self.check_runs)}", **run}

    async def update_check_run(self, check_run_url: str, status: str, conclusion: str | None = None,
                               title: str = "", summary: str = "") -> dict[str, Any]:
        update = {"url": check_run_url, "status": status, "conclusion": conclusion, "title": title, "summary": summary}
        self.calls.append(("update_check_run", update))
        self._print(f"check run {check_run_url}: {conclusion or status} — {title}")
        return update

    async def react(self, reactions_url: str, content: str) -> dict[str, Any]:
        self.calls.append(("react", {"reactions_url": reactions_url, "content": content}))
        return {"content": content}

    async def reply(self, comments_url: str | None, body: str) -> dict[str, Any]:
        self.calls.append(("reply", {"comments_url": comments_url, "body": body}))
        self._print(body)
        return {"body": body}
