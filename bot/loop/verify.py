"""Relaunch the branch and judge the new run: its id is chosen and journaled before the launch
(so a crash in between is adopted, not launched again), the run is watched for
`verify.min_steps` steps, its end or the timeout, a diverging run is stopped, and the failed
runs that were relaunched are deleted once the loop ends (`fix.delete_failed_run`).

Verified means learning (bot.runs.loss): at `verify.min_steps` (or at its end) the run's loss is
finite, not above twice its first value and not running away, nor far worse than the base
branch's run at the same point (bot.loop.baseline), and the loss its console printed
(bot.runs.console_loss: it shows what a loss logged once an epoch hides) is finite and did not
explode; a run with no loss at all is judged on its progress and on its numbers being finite.
A job that logs to W&B is never verified without its W&B run: its exit code alone says nothing
about its loss. A failed run still running (its loss went bad while its process lives) is
stopped before its fix is pushed, so the relaunch is never refused for it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

from bot.core.errors import BotError, OperationFailed
from bot.loop.branch_runs import LOSS_ROWS, BranchRuns
from bot.loop.journal import StepKey, StepLog
from bot.loop.launch import launch_branch
from bot.loop.model import GiveUp, Step
from bot.loop.ports import Launcher, Runs
from bot.loop.progress import OnPoll, Poll, ignore_poll, latest_loss
from bot.loop.repo_context import RepoContext
from bot.loop.waits import Parked, Wait
from bot.runs.locate import starts_wandb_runs
from bot.runs.loss import learning_problem, loss_problem, printed_loss_problem, started_like
from bot.runs.model import ACTIVE_STATES, FAILED_STATES, RunInfo
from bot.store.runs import new_run_id

STOP_WAIT_S = 30  # how long a cancelled run may take to end
_WANDB_BANNER = re.compile(r"^wandb: ")  # what wandb prints when a run starts (unless WANDB_SILENT)


class Judgement(Enum):
    VERIFIED = "verified"  # enough sane steps, or it finished
    UNVERIFIED = "unverified"  # still running and sane, but short of min_steps at the timeout
    FAILED = "failed"  # failed, or diverged and was stopped: the next attempt starts from it


def judge(run: RunInfo, problem: str | None, min_steps: int, *, needs_wandb: bool = False) -> Judgement:
    """The watched run's verdict; someone else stopping it ends the loop. With `needs_wandb`
    (the job logs to W&B), a run whose W&B run was never found is not verified."""
    if run.state == "killed" and problem is None:
        raise GiveUp(f"the relaunched run {run.id} was stopped by someone else")
    if problem is not None or run.state in FAILED_STATES:
        return Judgement.FAILED
    if needs_wandb and run.source == "launcher":
        return Judgement.UNVERIFIED
    return Judgement.VERIFIED if run.steps >= min_steps or run.state == "finished" else Judgement.UNVERIFIED


class Verifier:
    def __init__(
        self,
        *,
        runs: Runs,
        launcher: Launcher,
        steps: StepLog,
        config: dict[str, Any],
        progress: Callable[[str], None],
        poll: float = 1.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        new_id: Callable[[], str] = new_run_id,
        worktree: Path | None = None,
        on_poll: OnPoll = ignore_poll,
        park: bool = False,
        resumed: Wait | None = None,
    ):
        self.runs = runs
        self.launcher = launcher
        self.steps = steps
        self.config = config
        self.progress = progress
        self.poll = poll
        self.clock = clock
        self.sleep = sleep
        self.new_id = new_id
        self.on_poll = on_poll
        self.park = park  # a wait is left to the watcher (Parked) rather than slept through
        self.resumed = resumed  # the wait this job was parked at: its deadline stands
        self.relaunched_from: list[RunInfo] = []  # failed runs a relaunch replaced
        # The job logs to W&B (a run it replaced had a W&B run, or its code starts one): a
        # relaunch of it is verified only with its W&B run found.
        self.logs_to_wandb = worktree is not None and starts_wandb_runs(worktree)

    @property
    def min_steps(self) -> int:
        return int(self.config["verify"]["min_steps"])

    def relaunch(self, number: int, failed: RunInfo) -> str:
        # The id is chosen (and recorded) before the launch, so a crash in between is adopted.
        run_id = self.steps.once(StepKey(Step.RUN_ID, attempt=number), self.new_id)
        self.steps.once(StepKey(Step.LAUNCH, attempt=number), lambda: self._launch(run_id))
        self.progress(f"relaunched: run {run_id}")
        self.relaunched_from.append(failed)
        self.logs_to_wandb = self.logs_to_wandb or failed.source != "launcher"
        return run_id

    def end(self, run: RunInfo) -> None:
        """Stop a failed run that still runs (its loss went bad while its process lives) before
        its fix is pushed: while it runs, its relaunch would be refused and the fix never run.
        Only a run the bot launched is stopped; one started by hand does not block a launch."""
        if run.state not in ACTIVE_STATES or not self.launcher.launched(run.id):
            return
        self.progress(f"stopping run {run.id}: {run.loss_problem or 'it failed'}")
        self.launcher.stop(run.id)

    def judge(self, run: RunInfo, problem: str | None) -> Judgement:
        """`judge`, knowing whether the job logs to W&B: its code starts W&B runs, a run it
        replaced had one, or this one's log shows wandb starting."""
        needs_wandb = self.logs_to_wandb or (run.source == "launcher" and self._wandb_in_log(run))
        verdict = judge(run, problem, self.min_steps, needs_wandb=needs_wandb)
        if needs_wandb and run.source == "launcher" and verdict is Judgement.UNVERIFIED:
            self.progress(f"run {run.id} is not verified: the job logs to W&B but its W&B run was not found")
        return verdict

    def _wandb_in_log(self, run: RunInfo) -> bool:
        return any(_WANDB_BANNER.match(line) for line in self.runs.log_tail(run, 200))

    def _launch(self, run_id: str) -> str:
        if self.launcher.launched(run_id):
            return run_id
        try:
            return self.launcher.launch(run_id)
        except OperationFailed as exc:
            raise GiveUp(f"could not relaunch: {exc}") from None

    def watch(self, run_id: str) -> tuple[RunInfo, str | None]:
        """Wait for the new run's first `verify.min_steps` steps (or its end), then return it and
        what is wrong with its loss, if anything: a non-finite or exploded loss at any time (the
        run is stopped at once), one running away by then. A run over is one whose process is.
        Parked, the wait is not slept through: `Parked` carries it to the caller."""
        wait = self.wait_for(run_id)
        while (seen := self.look(wait)) is None:
            if self.park:
                raise Parked(wait)
            self.sleep(self.poll)
        return seen

    def wait_for(self, run_id: str) -> Wait:
        """The wait for `run_id`: the one it was parked at (its deadline kept), or a new one."""
        if self.resumed is not None and self.resumed.run_id == run_id:
            return self.resumed
        self.progress(f"watching run {run_id} for {self.min_steps} steps")
        return Wait(run_id, self.min_steps, self.clock() + self.config["verify"]["timeout"], self.poll)

    def look(self, wait: Wait) -> tuple[RunInfo, str | None] | None:
        """One look at the waited-for run: the run and its loss's problem once it can be judged
        (enough steps, its end, a broken loss, or the deadline passed); None to wait on."""
        run = self.runs.peek(wait.run_id)  # judged here, by the stricter rules of a relaunch
        rows = self.runs.loss_rows(run, max(self.min_steps, LOSS_ROWS))
        self.on_poll(Poll(run.id, run.state, run.steps, self.min_steps, latest_loss(rows)))
        done = run.state not in ACTIVE_STATES or run.steps >= self.min_steps
        # A printed loss is noisier (one batch each): only a non-finite or exploded one counts.
        judge = learning_problem if done else loss_problem
        logged = judge(rows)
        if logged and started_like(rows, self.runs.baseline_rows(run), judge):
            logged = None  # the base's own run was as high by this step, and learnt after
        problem = logged or printed_loss_problem(self.runs.console_loss_rows(run))
        if problem is None and done:  # compared once it is judged: a run may start worse and catch up
            problem = self.runs.baseline_problem(run, rows, relaunch=True)
        if problem and run.state in ACTIVE_STATES:
            self.launcher.stop(wait.run_id)
            run = self.runs.peek(wait.run_id)
        if problem or done or self.clock() > wait.deadline:
            return run.with_verdict(problem), problem
        return None

    def delete_failed_runs(self) -> None:
        """With `fix.delete_failed_run`, the runs that were relaunched go once the loop ends (not
        before: a resumed job still needs to read them)."""
        if not self.config["fix"]["delete_failed_run"]:
            return
        for run in self.relaunched_from:
            key = StepKey(Step.DELETED, run=run.id)
            if self.steps.done(key):
                continue
            try:
                self.runs.delete(self.runs.get(run.id))
            except BotError as exc:
                self.progress(f"could not delete failed run {run.id}: {exc}")
            self.steps.once(key, lambda: True)
            self.progress(f"deleted failed run {run.id}")


class BranchLauncher:
    """The Launcher port over the bot's launch records and the branch's configured backend."""

    def __init__(self, ctx: RepoContext, branch: str, config: dict[str, Any], runs: BranchRuns):
        self.ctx = ctx
        self.branch = branch
        self.config = config
        self.runs = runs

    def launched(self, run_id: str) -> bool:
        return self.ctx.state.get_run(run_id) is not None

    def launch(self, run_id: str) -> str:
        return launch_branch(self.ctx, self.branch, pull=False, run_id=run_id).id

    def stop(self, run_id: str) -> None:
        record = self.ctx.state.get_run(run_id)
        if record is None:
            return
        self.ctx.launcher(record.backend, self.config).cancel(record.handle)
        deadline = time.monotonic() + STOP_WAIT_S
        while (record := self.ctx.state.get_run(run_id)) and self.runs.refresh(record).state in ACTIVE_STATES:
            if time.monotonic() > deadline:
                raise GiveUp(f"run {run_id} did not stop within {STOP_WAIT_S} s of being cancelled")
            time.sleep(0.1)
