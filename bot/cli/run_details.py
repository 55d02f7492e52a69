"""Steps and loss for a wait that only polls the launch record (`launch --wait`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from bot.core.errors import BotError
from bot.loop.branch_runs import BranchRuns
from bot.loop.progress import OnPoll, Poll, latest_loss
from bot.loop.repo_context import RepoContext

EVERY_S = 5.0


class RunDetails:
    """An OnPoll that adds the run's steps and latest loss, read from the run store at most
    every `every` seconds (a read is an API call, or a scan of the offline run's file)."""

    def __init__(
        self,
        ctx: RepoContext,
        branch: str,
        forward: OnPoll,
        *,
        every: float = EVERY_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ctx = ctx
        self.branch = branch
        self.forward = forward
        self.every = every
        self.clock = clock
        self._runs: BranchRuns | None = None
        self._read_at: float | None = None
        self._steps: int | None = None
        self._loss: float | None = None

    def __call__(self, poll: Poll) -> None:
        now = self.clock()
        if poll.state == "running" and (self._read_at is None or now - self._read_at >= self.every):
            self._read_at = now
            self._read(poll.run_id)
        self.forward(replace(poll, steps=self._steps, loss=self._loss))

    def _read(self, run_id: str) -> None:
        try:
            self._runs = self._runs or self.ctx.runs(self.branch)
            run = self._runs.get(run_id)
            self._steps, self._loss = run.steps, latest_loss(self._runs.history(run, 1))
        except BotError:
            pass  # no W&B run yet (before wandb.init): the state alone is shown
