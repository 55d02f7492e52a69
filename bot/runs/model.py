"""What every run store returns, whichever backend it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# Run states, as W&B names them, plus "crashed" for a run that stopped without saying so.
STATES = ("running", "finished", "failed", "crashed", "killed", "queued")
FAILED_STATES = ("failed", "crashed")
ACTIVE_STATES = ("queued", "running")
# Ended states a bad loss turns into "failed": it exited cleanly, or was stopped, with a broken loss.
JUDGED_ENDS = ("finished", "killed")


@dataclass
class RunInfo:
    id: str
    state: str
    branch: str | None = None
    commit: str | None = None
    name: str | None = None
    config: dict = field(default_factory=dict)
    summary: dict = field(default_factory=dict)
    exit_code: int | None = None
    created_at: float | None = None  # unix seconds
    updated_at: float | None = None  # last heartbeat / last write
    steps: int = 0  # number of history steps logged
    url: str | None = None  # W&B page, when online
    path: str | None = None  # local folder, for offline runs
    source: str = "offline"  # offline | wandb | launcher
    record_id: str | None = None  # the bot's launch record, when the bot launched it
    log_path: str | None = None  # the launcher's captured stdout+stderr, when it has one
    # Why its logged loss shows a failed run (non-finite, exploded; see bot.runs.loss), once judged.
    loss_problem: str | None = None

    @property
    def failed(self) -> bool:
        """Failed by its state, or by its loss whatever its state (a run that exits 0 with a NaN
        loss failed; one still running with it is failing)."""
        return self.state in FAILED_STATES or self.loss_problem is not None

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def with_verdict(self, problem: str | None) -> RunInfo:
        """This run carrying its loss's verdict (`problem`, None: its loss is fine): one that ended
        with a problem becomes failed; one still running keeps its state, since its process is
        not over, and carries the problem."""
        self.loss_problem = problem
        if problem and self.state in JUDGED_ENDS:
            self.state = "failed"
        return self

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "branch": self.branch,
            "commit": self.commit,
            "exit_code": self.exit_code,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "steps": self.steps,
            "url": self.url,
            "path": self.path,
            "source": self.source,
            "record_id": self.record_id,
            "loss_problem": self.loss_problem,
        }


class RunStore(Protocol):
    """One interface over W&B's public API and offline run folders."""

    def runs(self, branch: str | None = None) -> list[RunInfo]:
        """Runs of the branch (all runs when None), newest first."""

    def get(self, run_id: str) -> RunInfo:
        """One run by id; raises BadInput when it cannot be found."""

    def history(self, run: RunInfo, rows: int = 10) -> list[dict]:
        """The last `rows` history rows, oldest first, without reading the whole history."""

    def first_history(self, run: RunInfo, rows: int = 3) -> list[dict]:
        """The first `rows` history rows (where the run started), without reading the rest."""

    def log_tail(self, run: RunInfo, lines: int = 200) -> list[str]:
        """The last `lines` lines of the run's console log, without reading the whole log."""

    def delete(self, run: RunInfo) -> None:
        """Delete the run."""
