"""The server's fix job: clone, run the pipeline in a thread, report on the PR as it moves.

The worker gets the installation id, never a stored token: a fresh token (from the App's
cache) authenticates the clone's fetch and push for this job only.
"""
from __future__ import annotations

import asyncio
import logging
from urllib.parse import quote, urlsplit, urlunsplit

from bot.config import Settings
from bot.context import RepoContext
from bot.forge import DIAGNOSING, GitHubForge, job_marker
from bot.jobs import Job, Queue
from bot.pipeline import FixRequest, Outcome, Pipeline, StepLog

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 60
CONCLUSIONS = {"patched": "success", "relaunched": "success", "gave_up": "failure", "none": "neutral"}
TITLES = {"patched": "Fixed and relaunched", "relaunched": "Relaunched", "gave_up": "Gave up",
          "none": "Nothing changed"}


def authenticated_url(clone_url: str, token: str) -> str:
    """The clone URL with the installation token as userinfo (https only)."""
    parts = urlsplit(clone_url)
    if parts.scheme != "https":
        return clone_url
    netloc = f"x-access-token:{quote(token, safe='')}@{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit(parts._replace(netloc=netloc))


class FixJobExecutor:
    """`await executor(job, github_app=...)`: what a worker runs for each fix job."""

    def __init__(self, settings: Settings, queue: Queue):
        self.settings = settings
        self.queue = queue

    async def __call__(self, job: Job, *, github_app) -> None:
        if self.queue.cancel_requested(job.id):
            return
        gh = await github_app.gh_for_installation(job["installation_id"])
        forge = GitHubForge(gh)
        marker = job_marker(job.id)
        if job.get("comments_url"):
            await forge.upsert_comment(job["comments_url"], marker,
                                       DIAGNOSING.format(marker=marker, branch=job["branch"]))
        pr_text = await self._pr_text(gh, job)
        token = await github_app.installation_token(job["installation_id"])
        loop = asyncio.get_running_loop()

        def report(stage: str, body: str) -> None:
            if job.get("comments_url"):
                future = asyncio.run_coroutine_threadsafe(
                    forge.upsert_comment(job["comments_url"], marker, body), loop)
                future.result(timeout=REPORT_TIMEOUT_S)

        outcome = await asyncio.to_thread(self._run, job, self._clone_url(job, token), pr_text, report)
        await self._conclude(forge, job, outcome, marker)

    def _run(self, job: Job, auth_url: str, pr_text: str | None, report) -> Outcome:
        from bot.workspace import clone_for_server

        clone = clone_for_server(self.settings.state_dir, job["repo"], auth_url)
        ctx = RepoContext.open(self.settings, clone, auth_url=auth_url)
        steps = StepLog(load=lambda: self.queue.steps(job.id),
                        save=lambda key, value: self.queue.record_step(job.id, key, value))
        repo, branch = job["repo"], job["branch"]
        used = steps.once("attempts_used", lambda: self.queue.attempts_used(repo, branch))
        request = FixRequest(branch=branch, dry_run=bool(job.get("dry_run")), hint=job.get("hint"),
                             pr_text=pr_text, attempts_used=used)
        pipeline = Pipeline(ctx, steps=steps, reporter=report,
                            cancelled=lambda: self.queue.cancel_requested(job.id))
        outcome = pipeline.run(request)
        steps.once("attempts_counted", lambda: self._count(repo, branch, outcome))
        return outcome

    def _count(self, repo: str, branch: str, outcome: Outcome) -> int:
        """The budget spans triggers: spent attempts stay spent until a fix is verified."""
        if outcome.verified:
            self.queue.reset_attempts(repo, branch)
            return 0
        for _ in outcome.attempts:
            self.queue.add_attempt(repo, branch)
        return len(outcome.attempts)

    def _clone_url(self, job: Job, token: str) -> str:
        template = self.settings.github_git_url
        url = template.format(repo=job["repo"]) if template else job["clone_url"]
        return authenticated_url(url, token)

    async def _pr_text(self, gh, job: Job) -> str | None:
        if not job.get("pr_url"):
            return None
        pr = await gh.getitem(job["pr_url"])
        return f"{pr.get('title') or ''}\n\n{pr.get('body') or ''}".strip() or None

    async def _conclude(self, forge: GitHubForge, job: Job, outcome: Outcome, marker: str) -> None:
        if job.get("comments_url") and outcome.comment:
            await forge.upsert_comment(job["comments_url"], marker, outcome.comment)
        head = outcome.commits[-1] if outcome.commits else job.get("head_sha")
        if not head:
            return
        conclusion = CONCLUSIONS[outcome.action]
        if outcome.action in ("patched", "relaunched") and not outcome.verified:
            conclusion = "neutral"
        await forge.create_check_run(job.get("base_repo") or job["repo"], head, conclusion=conclusion,
                                     title=TITLES[outcome.action], summary=outcome.comment[:60000])
        log.info("job %s on %s#%s: %s (verified: %s)", job.id, job["repo"], job["branch"],
                 outcome.action, outcome.verified)
