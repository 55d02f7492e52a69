"""The baseline a branch's runs are compared with (bot.runs.loss.baseline_problem): the latest run
of its base branch that finished and whose loss learnt, found the way the bot finds any branch's
runs (its own launch records, offline W&B runs, W&B when configured).

A careful researcher who sees a loss of 9.5 that falls looks at what main reaches at the same
point before calling it learning. No baseline (no base branch, no finished run of it that
learnt, or the runs cannot be read) means no comparison: the run is judged on its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.core.errors import BotError
from bot.runs.loss import learning_problem, loss_key, merge_rows, printed_loss_problem
from bot.runs.model import RunInfo, RunStore

BASELINE_ROWS = 500  # the baseline's first and last history rows: the points a run is compared at
CANDIDATES = 3  # the base branch's newest finished runs looked at for one that learnt

Rows = list[dict[str, Any]]


@dataclass(frozen=True)
class Baseline:
    run_id: str
    branch: str
    rows: Rows  # its history rows, first and last
    printed: Rows  # the loss its console printed, first and last (bot.runs.console_loss)

    @property
    def label(self) -> str:
        """How a verdict names it: "main's run 1a2b3c"."""
        return f"{self.branch}'s run {self.run_id}"


class BaseRuns(Protocol):
    """What finding a baseline reads of the base branch's runs (BranchRuns)."""

    @property
    def store(self) -> RunStore: ...

    def runs(self, branch: str | None = None, state: str | None = None) -> list[RunInfo]: ...

    def console_loss_rows(self, run: RunInfo) -> Rows: ...


def find_baseline(runs: BaseRuns, branch: str) -> Baseline | None:
    """The newest of `branch`'s last CANDIDATES finished runs whose loss learnt, or None."""
    try:
        finished = runs.runs(branch, state="finished")[:CANDIDATES]
        return next((found for run in finished if (found := _learnt(runs, run, branch)) is not None), None)
    except BotError:
        return None  # W&B unreachable, a run unreadable: judged on its own, as without a baseline


def _learnt(runs: BaseRuns, run: RunInfo, branch: str) -> Baseline | None:
    rows = _rows(runs.store, run)
    printed = runs.console_loss_rows(run)
    if loss_key(rows) is None and loss_key(printed) is None:
        return None  # logs no loss: nothing to compare with
    if learning_problem(rows) or printed_loss_problem(printed):
        return None
    return Baseline(run.id, branch, rows, printed)


def _rows(store: RunStore, run: RunInfo) -> Rows:
    if run.source == "launcher":
        return []  # no W&B run: its console is all there is
    return merge_rows(store.first_history(run, BASELINE_ROWS), store.history(run, BASELINE_ROWS))
