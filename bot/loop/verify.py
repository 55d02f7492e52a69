"""Relaunch the branch and judge the new run: its id is chosen and journaled before the launch
(so a crash in between is adopted, not launched again), the run is watched for
`verify.min_steps` steps, its end or the timeout, a diverging run is stopped, and the failed
runs that were relaunched are deleted once the loop ends (`fix.delete_failed_run`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum
from typing import Any

from bot.core.errors import BotError, OperationFailed
from bot.loop.branch_runs import BranchRuns
from bot.loop.journal import StepKey, StepLog
from bot.loop.launch import launch_branch
from bot.loop.model import GiveUp, Step
from bot.loop.ports import Launcher, Runs
from bot.loop.progress import OnPoll, Poll, ignore_poll, latest_loss
from bot.loop.repo_context import RepoContext
from bot.runs.loss import loss_problem
from bot.runs.model import ACTIVE_STATES, FAILED_STATES, RunInfo
from bot.store.runs import new_run_id

STOP_WAIT_S = 30  # how long a cancelled run may take to end


class Judgement(Enum):
    VERIFIED = "verified"  # enough sane steps, or it finished
    UNVERIFIED = "unverified"  # still running and sane, but short of min_steps at the timeout
    FAILED = "failed"  # failed, or diverged and was stopped: the next attempt starts from it


def judge(run: RunInfo, problem: str | None, min_steps: int) -> Judgement:
    """The watched run's verdict; someone else stopping it ends the loop."""
    if run.state == "killed" and problem is None:
        raise GiveUp(f"the relaunched run {run.id} was stopped by someone else")
    if problem is not None or run.state in FAILED_STATES:
        return Judgement.FAILED
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
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        new_id: Callable[[], str] = new_run_id,
        on_poll: OnPoll = ignore_poll,
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
        self.relaunched_from: list[RunInfo] = []  # failed runs a relaunch replaced

    @property
    def min_steps(self) -> int:
        return int(self.config["verify"]["min_steps"])

    def relaunch(self, number: int, failed: RunInfo) -> str:
        # The id is chosen (and recorded) before the launch, so a crash in between is adopted.
        run_id = self.steps.once(StepKey(Step.RUN_ID, attempt=number), self.new_id)
        self.steps.once(StepKey(Step.LAUNCH, attempt=number), lambda: self._launch(run_id))
        self.progress(f"relaunched: run {run_id}")
        self.relaunched_from.append(failed)
        return run_id

    def _launch(self, run_id: str) -> str:
        if self.launcher.launched(run_id):
            return run_id
        try:
            return self.launcher.launch(run_id)
        except OperationFailed as exc:
            raise GiveUp(f"could not relaunch: {exc}") from None

    def watch(self, run_id: str) -> tuple[RunInfo, str | None]:
        """Wait for the new run's first `verify.min_steps` steps (or its end), then return it and
        what is wrong with its loss, if anything. A diverging run is stopped at once."""
        deadline = self.clock() + self.config["verify"]["timeout"]
        self.progress(f"watching run {run_id} for {self.min_steps} steps")
        while True:
            run = self.runs.get(run_id)
            rows = self.runs.history(run, max(self.min_steps, 10))
            self.on_poll(Poll(run.id, run.state, run.steps, self.min_steps, latest_loss(rows)))
            problem = loss_problem(rows)
            if problem and run.state in ACTIVE_STATES:
                self.launcher.stop(run_id)
                run = self.runs.get(run_id)
            if problem or run.state not in ACTIVE_STATES or run.steps >= self.min_steps:
                return run, problem
            if self.clock() > deadline:
                return run, None
            self.sleep(self.poll)

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
