"""The server's fix job: clone, run the pipeline in a thread, report on the PR as it moves.

The worker gets the installation id, never a stored token: each fetch and push asks the
App's token cache for a token, so a job that outlives one token gets the next.

When the server stops (`stop` is set), the pipeline stops at its next step boundary: right
after a step is journaled, between two looks at the relaunched run, or instead of waiting on a
PR comment. It raises `Interrupted`; the job goes back to the queue with its journal, and the
next start resumes it. The pipeline runs in a daemon thread, so a step that does not end in
time (a long setup, an LLM call) never holds the process: it is cut as a kill would cut it,
which the journal is made for.

The pipeline runs parked: at its wait for the relaunched run it raises `Parked`, the worker
stores the job as waiting, and the watcher queues it again when the run is ready; the job is
then run again from its journal, given its wait (`job.wait`), to judge the run.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

from gidgethub.abc import GitHubAPI

from bot.app.checks import extended_base, file_text
from bot.app.forge import GitHubForge
from bot.app.job_views import OUTCOME_STEP
from bot.app.jobs import Job
from bot.app.messages import DIAGNOSING, job_marker
from bot.app.queue import Queue
from bot.core.errors import BadInput, BotError
from bot.core.secrets import Redactor
from bot.core.settings import Settings
from bot.loop.journal import StepLog
from bot.loop.model import Action, FixRequest, Outcome
from bot.loop.pipeline import Interrupted, Pipeline
from bot.loop.repo_context import RepoContext
from bot.loop.report import stopped_body
from bot.loop.waits import Parked
from bot.repo.config import CONFIG_PATH, Base
from bot.repo.publish import clone_for_server

log = logging.getLogger(__name__)

REPORT_TIMEOUT_S = 60
STOP_POLL_S = 0.2  # how often a wait on the event loop looks at the stop flag
T = TypeVar("T")
CONCLUSIONS = {"patched": "success", "relaunched": "success", "gave_up": "failure", "none": "neutral"}
TITLES = {
    "patched": "Fixed and relaunched",
    "relaunched": "Relaunched",
    "gave_up": "Gave up",
    "none": "Nothing changed",
}


def authenticated_url(clone_url: str, token: str) -> str:
    """The clone URL with the installation token as userinfo (https only)."""
    parts = urlsplit(clone_url)
    if parts.scheme != "https":
        return clone_url
    netloc = f"x-access-token:{quote(token, safe='')}@{parts.hostname}{f':{parts.port}' if parts.port else ''}"
    return urlunsplit(parts._replace(netloc=netloc))


@dataclass(frozen=True)
class PullRequest:
    """What a fix reads of its pull request: its title and body, and the branch it targets."""

    text: str | None = None
    base_ref: str | None = None

    @classmethod
    def from_api(cls, pr: dict[str, Any]) -> PullRequest:
        text = f"{pr.get('title') or ''}\n\n{pr.get('body') or ''}".strip() or None
        base = pr.get("base")
        ref = base.get("ref") if isinstance(base, dict) else None
        return cls(text, ref if isinstance(ref, str) and ref else None)


class FixJobExecutor:
    """`await executor(job, github_app=...)`: what a worker runs for each fix job."""

    def __init__(self, settings: Settings, queue: Queue):
        self.settings = settings
        self.queue = queue
        self.redactor = Redactor.from_settings(settings)  # the last step of every comment and check run

    async def __call__(self, job: Job, *, github_app: Any, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        if self.queue.cancel_requested(job.id):
            return
        gh = await github_app.gh_for_installation(job.fix.installation_id)
        forge = GitHubForge(gh)
        marker = job_marker(job.id)
        if job.wait is None:  # a job woken from its wait keeps its comment (the relaunch) until the verdict
            await self._comment(forge, job, marker, DIAGNOSING.format(marker=marker, branch=job.fix.branch))
        pr = await self._pull_request(gh, job)
        base = await self._config_base(gh, job)
        loop = asyncio.get_running_loop()

        def report(stage: str, body: str) -> None:
            if stop.is_set():
                raise Interrupted(f"stopped before the {stage} report")  # not journaled: posted on resume
            future = asyncio.run_coroutine_threadsafe(self._comment(forge, job, marker, body), loop)
            try:
                wait_unless_stopped(future, REPORT_TIMEOUT_S, stop)
            except Interrupted:
                raise
            except Exception as exc:
                log.warning("job %s: the PR comment was not updated in time: %s", job.id, exc)

        def clone_url() -> str:  # called for each fetch and push, from the pipeline's thread
            return self._clone_url(job, github_app.token_from_thread(job.fix.installation_id))

        try:
            outcome = await in_daemon_thread(lambda: self._run(job, clone_url, pr, report, stop, base))
        except (Interrupted, Parked):
            raise  # the worker puts the job back in the queue, or parks it at its wait
        except Exception as exc:
            await self._stopped(forge, job, marker, exc)
            raise
        await self._conclude(forge, job, outcome, marker)

    def _run(
        self,
        job: Job,
        clone_url: Callable[[], str],
        pr: PullRequest,
        report: Callable[[str, str], None],
        stop: threading.Event,
        base: Base | None = None,
    ) -> Outcome:
        clone = clone_for_server(self.settings.state_dir, job.fix.repo, clone_url())
        ctx = RepoContext.open(self.settings, clone, auth_url=clone_url)
        ctx.config_base = base
        repo, branch = job.fix.repo, job.fix.branch
        if pr.base_ref is not None:
            ctx.workspace.set_base_branch(branch, pr.base_ref)

        def save(key: str, value: Any) -> None:
            self.queue.record_step(job.id, key, value)
            if stop.is_set():  # a step boundary: this step is journaled, the next one is for the next start
                raise Interrupted(f"stopped after step {key}")

        steps = StepLog(load=lambda: self.queue.steps(job.id), save=save)
        used = steps.once("attempts_used", lambda: self.queue.attempts_used(repo, branch))
        request = FixRequest(
            branch=branch,
            dry_run=job.fix.dry_run,
            hint=job.fix.hint,
            pr_text=pr.text,
            attempts_used=used,
            expected_head=self._expected_head(job),
        )
        pipeline = Pipeline(
            ctx,
            steps=steps,
            reporter=report,
            cancelled=lambda: self.queue.cancel_requested(job.id),
            stopping=stop.is_set,
            park=True,
            wait=job.wait,
        )
        try:
            outcome = pipeline.run(request)
        except (Interrupted, Parked):
            raise  # what it committed is journaled and pushed on resume: nothing is discarded
        except Exception:
            self._discard_unpushed(ctx, branch)
            raise
        if outcome.action == "gave_up":
            self._discard_unpushed(ctx, branch)  # e.g. a fix committed, then the push was refused
        steps.once("attempts_counted", lambda: self._count(repo, branch, outcome))
        return outcome

    @staticmethod
    async def _config_base(gh: GitHubAPI, job: Job) -> Base | None:
        """The organisation defaults the branch's repo config extends (`_extends`), read through the
        App here in the worker; None when it extends nothing. One the App cannot read is logged, and
        the branch's own config stands (the config check run reports it on the PR)."""
        text = await file_text(gh, job.fix.repo, CONFIG_PATH, ref=job.fix.branch) or ""
        try:
            extends, base = await extended_base(gh, text, job.fix.repo.split("/", 1)[0])
        except BadInput:
            return None  # a broken `_extends` is the repo config's problem, reported when it is parsed
        if extends is not None and base is None:
            log.warning("job %s: %s names %s, which the App cannot read", job.id, CONFIG_PATH, extends.source)
        return base

    @staticmethod
    def _expected_head(job: Job) -> str | None:
        """A comment asks about the code its author saw; an alert about whatever the branch holds."""
        return None if job.fix.from_alert else job.fix.head_sha

    @staticmethod
    def _discard_unpushed(ctx: RepoContext, branch: str) -> None:
        """The bot's own clone must not keep a commit or an edit that never reached the remote:
        the next job would push it unseen, or find the branch dirty or diverged."""
        try:
            dropped = ctx.workspace.discard_unpushed(branch)
        except BotError as exc:
            log.warning("could not reset the bot's clone of %s: %s", branch, exc)
            return
        if dropped:
            log.info("dropped unpushed commits %s of %s", dropped, branch)

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
        url = template.format(repo=job.fix.repo) if template else job.fix.clone_url
        return authenticated_url(url, token)

    @staticmethod
    async def _pull_request(gh: Any, job: Job) -> PullRequest:
        """What the fix reads of the job's pull request, as it is now (its base may have changed)."""
        if not job.fix.pr_url:
            return PullRequest()
        return PullRequest.from_api(await gh.getitem(job.fix.pr_url))

    async def _comment(self, forge: GitHubForge, job: Job, marker: str, body: str) -> None:
        """A failed comment edit is logged, never allowed to stop the fix itself."""
        if not job.fix.comments_url:
            return
        try:
            await forge.upsert_comment(job.fix.comments_url, marker, self.redactor.text(body))
        except Exception as exc:
            log.warning("job %s: could not update the PR comment: %s", job.id, exc)

    async def _stopped(self, forge: GitHubForge, job: Job, marker: str, exc: Exception) -> None:
        # A bot error says what is wrong; anything else is the bot's own bug, named but not detailed.
        reason = (
            str(exc) if isinstance(exc, BotError) else f"an internal error ({type(exc).__name__}); see the bot's log"
        )
        reason = self.redactor.text(reason)
        await self._comment(forge, job, marker, stopped_body(reason))
        if job.fix.head_sha:
            await forge.create_check_run(
                job.fix.check_repo, job.fix.head_sha, conclusion="failure", title="Stopped", summary=reason
            )

    async def _conclude(self, forge: GitHubForge, job: Job, outcome: Outcome, marker: str) -> None:
        # Journaled for the status page, `jobs show` and /metrics ("verified", "gave up"), before
        # the report; not a pipeline step: a resumed job's journal keeps it as a row it does not know.
        data = {"action": Action(outcome.action).value, "verified": outcome.verified, "reason": outcome.reason}
        self.queue.record_step(job.id, OUTCOME_STEP, data)
        await self._comment(forge, job, marker, outcome.comment)
        head = outcome.commits[-1] if outcome.commits else job.fix.head_sha
        if not head:
            return
        conclusion = CONCLUSIONS[outcome.action]
        if outcome.action in ("patched", "relaunched") and not outcome.verified:
            conclusion = "neutral"
        await forge.create_check_run(
            job.fix.check_repo,
            head,
            conclusion=conclusion,
            title=self.redactor.text(TITLES[outcome.action]),
            summary=self.redactor.text(outcome.comment)[:60000],  # redacted before the cut: no half secret
        )
        log.info(
            "job %s on %s#%s: %s (verified: %s)", job.id, job.fix.repo, job.fix.branch, outcome.action, outcome.verified
        )


def wait_unless_stopped(future: Future[Any], timeout: float, stop: threading.Event) -> Any:
    """`future.result(timeout)`, from a thread; Interrupted (the future cancelled) once `stop` is set."""
    waited = 0.0
    while waited < timeout:
        if stop.is_set():
            future.cancel()
            raise Interrupted("stopped while waiting on GitHub")
        try:
            return future.result(timeout=min(STOP_POLL_S, timeout - waited))
        except concurrent.futures.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            waited += STOP_POLL_S
    return future.result(timeout=0)


async def in_daemon_thread(func: Callable[[], T]) -> T:
    """`func()` in a daemon thread: awaited like `asyncio.to_thread`, but a process that exits
    does not wait for it (the default executor's threads would hold the exit until they end)."""
    loop = asyncio.get_running_loop()
    result: asyncio.Future[T] = loop.create_future()

    def settle(set_outcome: Callable[[], None]) -> None:
        if not loop.is_closed():
            try:
                loop.call_soon_threadsafe(lambda: None if result.done() else set_outcome())
            except RuntimeError:  # the loop closed meanwhile: nobody waits for the outcome
                pass

    def target() -> None:
        try:
            value = func()
        except BaseException as exc:
            error = exc  # `exc` is unbound once the except block ends; the callback runs later
            settle(lambda: result.set_exception(error))
        else:
            settle(lambda: result.set_result(value))

    threading.Thread(target=target, name="pipeline", daemon=True).start()
    return await result
