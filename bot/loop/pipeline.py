"""The fix loop:

    diagnose → decide → patch → commit → push → report → relaunch → verify
        ▲                                                            │
        └────────────── the new run failed and budget is left ───────┘

`decide` chooses, `apply` changes the branch, `verify` relaunches and judges; this module ties
them together. Each step with an effect outside the process (commit, push, comment, launch)
is journaled under (job, attempt, step), so a resumed job skips what it already did: it never
commits, pushes or launches twice. The same journal makes the loop resumable at its wait for
the relaunched run (bot.loop.waits): parked, `run` raises `Parked` there, and the job is run
again, given its `wait`, once the watcher finds the run ready.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bot.fixers.llm.client import GaveUp as GaveUpFixing
from bot.fixers.llm.client import propose_llm_fix
from bot.fixers.model import FixContext, FixProposal
from bot.loop import decide, report
from bot.loop.apply import Applier, Reporter
from bot.loop.comments import Comments
from bot.loop.decide import Decider
from bot.loop.inspect import diagnose_run
from bot.loop.journal import StepKey, StepLog
from bot.loop.model import Action, Attempt, Diagnosed, FixRequest, GiveUp, Outcome, Step, run_json
from bot.loop.progress import OnPoll, ignore_poll
from bot.loop.repo_context import RepoContext
from bot.loop.verify import BranchLauncher, Judgement, Verifier
from bot.loop.waits import Wait
from bot.repo.git import git
from bot.repo.publish import BOT_EMAIL, BOT_NAME
from bot.runs.model import RunInfo

BOT_IDENTITY = (("NAME", BOT_NAME), ("EMAIL", BOT_EMAIL))  # who sets an interrupted patch aside


class Interrupted(Exception):
    """The job was asked to stop (its server is shutting down): raised at a step boundary. The
    journal holds every step done, so the next start resumes the job from there."""


class Pipeline:
    def __init__(
        self,
        ctx: RepoContext,
        *,
        steps: StepLog | None = None,
        reporter: Reporter | None = None,
        progress: Callable[[str], None] | None = None,
        poll: float = 1.0,
        cancelled: Callable[[], bool] | None = None,
        stopping: Callable[[], bool] | None = None,
        on_poll: OnPoll = ignore_poll,
        park: bool = False,
        wait: Wait | None = None,
    ):
        """`park`: at a wait, raise `Parked` (the server: the watcher wakes the job) rather than
        wait in-process (the command line). `wait`: the wait a parked job is resumed from."""
        self.ctx = ctx
        self.steps = steps or StepLog()
        self.reporter: Reporter = reporter or (lambda stage, body: None)
        self.progress: Callable[[str], None] = progress or (lambda line: None)
        self.poll = poll
        self.cancelled = cancelled or (lambda: False)
        self.stopping = stopping or (lambda: False)
        self.on_poll = on_poll
        self.park = park
        self.wait = wait

    def run(self, req: FixRequest) -> Outcome:
        self._open(req)
        # A resumed job works on the run it started with, not whatever is newest now.
        failed = self.runs.get(self.steps.once(Step.TARGET, lambda: req.run_id or self.runs.latest(req.branch).id))
        if not failed.failed:  # by its state, or by its loss whatever its state
            return Outcome(
                action=Action.NONE,
                comment=self.comments.nothing_to_fix(req.branch, failed),
                reason=f"the {'' if req.run_id else 'latest '}run ({failed.id}) is {failed.state}",
            )
        outcome = Outcome(action=Action.GAVE_UP)
        try:
            decide.check_not_reverted(self.ctx.workspace, req.branch)
            decide.check_pinned(self.ctx.workspace, self.steps, req.branch, req.expected_head)
            outcome = self._loop(req, failed, outcome)
        except GiveUp as stop:
            outcome = self._gave_up(outcome, str(stop))
        self.verifier.delete_failed_runs()
        return outcome

    def _open(self, req: FixRequest) -> None:
        ctx, branch = self.ctx, req.branch
        self._set_aside_interrupted_patch(branch)
        self.worktree = ctx.workspace.worktree(branch)
        self.config = ctx.reload_config(branch)
        self.runs = ctx.runs(branch)
        self.comments = Comments(ctx.settings.secrets(), self.config["fix"]["max_attempts"])
        self.decider = Decider(ctx.workspace, ctx.settings, self.config, branch)
        self.applier = Applier(
            workspace=ctx.workspace,
            settings=ctx.settings,
            config=self.config,
            worktree=self.worktree,
            branch=branch,
            steps=self.steps,
            comments=self.comments,
            reporter=self.reporter,
            progress=self.progress,
        )
        self.verifier = Verifier(
            runs=self.runs,
            launcher=BranchLauncher(ctx, branch, self.config, self.runs),
            steps=self.steps,
            config=self.config,
            progress=self.progress,
            poll=self.poll,
            worktree=self.worktree,
            sleep=self._sleep,
            on_poll=self.on_poll,
            park=self.park,
            resumed=self.wait,
        )

    def _set_aside_interrupted_patch(self, branch: str) -> None:
        """A job stopped between writing its patch and committing it (a kill) left the patch in the
        bot's worktree, which would then be refused as dirty. The journal says so (an attempt's
        base recorded, its commit not): the patch goes to git's stash (recoverable) and the
        attempt makes it again."""
        begun = [key.attempt for key in map(StepKey.parse, self.steps.rows()) if key and key.step is Step.BASE]
        if not any(not self.steps.done(StepKey(Step.COMMIT, attempt=n)) for n in begun):
            return
        path = self.ctx.workspace.worktree_path(branch)
        if not (path / ".git").exists() or not git(path, "status", "--porcelain", "--untracked-files=no").out.strip():
            return
        message = f"fix-and-relaunch: a patch of {branch} interrupted before its commit"
        identity = {f"GIT_{role}_{part}": value for role in ("AUTHOR", "COMMITTER") for part, value in BOT_IDENTITY}
        git(path, "stash", "push", "--quiet", "--message", message, env=identity)
        self.progress(f"set aside an interrupted patch in the worktree of {branch} (git stash list: {message!r})")

    def _loop(self, req: FixRequest, failed: RunInfo, outcome: Outcome) -> Outcome:
        diverged: str | None = None
        max_attempts = self.config["fix"]["max_attempts"]
        for number in range(req.attempts_used + 1, max_attempts + 1):
            self._check_cancelled()
            found = self._diagnose(failed, diverged)
            attempt = self._begin(outcome, number, found)
            fix_ctx = self._fix_context(req, found, outcome.attempts[:-1])
            if req.dry_run:
                return self._dry_run(outcome, found, self.decider.decide(found, fix_ctx), fix_ctx)
            decision = self.decider.decision(self.steps, number, found, fix_ctx)
            if req.relaunch:
                self.verifier.end(found.run)  # before the push: a run still running blocks its relaunch
            applied = self.applier.apply(req, found, decision, fix_ctx, attempt, outcome)
            if not req.relaunch:
                outcome.action = Action.PATCHED if attempt.commit else Action.NONE
                return outcome
            self._check_cancelled()
            run = self._relaunch(attempt, failed, outcome)
            verdict = self.verifier.judge(run, attempt.problem)
            if verdict is not Judgement.FAILED:
                outcome.verified = verdict is Judgement.VERIFIED
                self.applier.report_verdict(outcome, found, attempt, applied)
                return outcome
            self.progress(f"attempt {number}: the relaunched run failed too ({attempt.problem or run.state})")
            failed, diverged = run, attempt.problem
        raise GiveUp(f"the attempt budget is spent ({max_attempts} attempts)")

    def _begin(self, outcome: Outcome, number: int, found: Diagnosed) -> Attempt:
        """The attempt's record. The same failure again, no further after a fix, stops the loop."""
        outcome.category = outcome.category or found.diagnosis.category
        outcome.diagnosis = outcome.diagnosis or found.diagnosis.to_json()
        signature = decide.signature(found.diagnosis)
        attempt = Attempt(number, found.diagnosis.category, found.run.id, found.run.steps, signature=signature)
        decide.check_progress(outcome.attempts, attempt)
        outcome.attempts.append(attempt)
        return attempt

    def _fix_context(self, req: FixRequest, found: Diagnosed, earlier: list[Attempt]) -> FixContext:
        return decide.fix_context(
            req, found, earlier, worktree=self.worktree, config=self.config, runs=self.runs, history=self.ctx.workspace
        )

    def _relaunch(self, attempt: Attempt, failed: RunInfo, outcome: Outcome) -> RunInfo:
        """The relaunched run, watched until it is judged."""
        run, attempt.problem = self.verifier.watch(self.verifier.relaunch(attempt.number, failed))
        attempt.run = outcome.new_run = run_json(run)
        outcome.action = Action.PATCHED if outcome.commits else Action.RELAUNCHED
        return run

    def _check_cancelled(self) -> None:
        self._check_stopping()
        if self.cancelled():
            raise GiveUp("the job was cancelled (its pull request was closed)")

    def _check_stopping(self) -> None:
        if self.stopping():
            raise Interrupted("stopped at a step boundary")

    def _sleep(self, seconds: float) -> None:
        """The verifier's wait between looks at the new run: a stop ends it."""
        self._check_stopping()
        time.sleep(seconds)
        self._check_stopping()

    def _diagnose(self, run: RunInfo, diverged: str | None) -> Diagnosed:
        self.progress(f"diagnosing run {run.id} ({run.state})")
        found = diagnose_run(
            self.runs, run, worktree=self.worktree, secrets=self.ctx.settings.secrets(), diverged=diverged
        )
        self.progress(f"diagnosis: {found.diagnosis.category}: {found.diagnosis.summary}")
        return found

    def _gave_up(self, outcome: Outcome, reason: str) -> Outcome:
        outcome.action, outcome.reason = Action.GAVE_UP, reason
        outcome.comment = self.comments.gave_up(reason, outcome)
        self.reporter("gave_up", outcome.comment)
        self.progress(f"gave up: {reason}")
        return outcome

    def _dry_run(
        self, outcome: Outcome, found: Diagnosed, proposal: FixProposal | None, fix_ctx: FixContext
    ) -> Outcome:
        """Nothing is changed: `action` stays `none` and the proposed diff is shown."""
        if proposal is None:
            try:
                proposal = propose_llm_fix(fix_ctx, self.ctx.settings)
            except GaveUpFixing as exc:  # the model found no safe fix: the same outcome as a real run's
                raise GiveUp(f"the LLM fixer gave up: {exc}") from None
        outcome.action = Action.NONE
        outcome.patch = report.render_diff(self.worktree, proposal.edits)
        outcome.attempts[-1].fixer = proposal.fixer
        outcome.comment = self.comments.dry_run(proposal, found, outcome.patch)
        return outcome
