"""Look at a failed run: its config, numbers and log tail, and the diagnosis they give, with
every secret redacted. `diagnose --repo --branch` shows the latest failed run this way; the
fix loop diagnoses each run it works on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput
from bot.core.secrets import redact_lines, redact_value
from bot.diagnosis import diagnose_lines
from bot.diagnosis.model import Diagnosis
from bot.loop.model import Diagnosed
from bot.loop.ports import Runs
from bot.loop.repo_context import RepoContext
from bot.runs.model import FAILED_STATES, RunInfo

TAIL_LINES = 200
HISTORY_ROWS = 10
LOOP_HISTORY_ROWS = 20  # the loop also reads the loss curve from these


@dataclass
class Inspection:
    """What `diagnose --repo --branch` shows: the run, its numbers, its log, and the verdict."""

    run: RunInfo
    history: list[dict[str, Any]]
    log_tail: list[str]
    diagnosis: Diagnosis

    def to_json(self) -> dict[str, Any]:
        # The diagnosis keys stay at the top level: that is the DESIGN.md contract.
        return {
            **self.diagnosis.to_json(),
            "run": self.run.to_json(),
            "config": self.run.config,
            "summary_metrics": self.run.summary,
            "history": self.history,
            "log_tail": self.log_tail,
        }


def inspect_latest_failed(ctx: RepoContext, branch: str) -> Inspection:
    """The branch's latest failed run (its latest run when none failed), diagnosed."""
    runs = ctx.runs(branch)
    candidates = runs.runs(branch)
    if not candidates:
        raise BadInput(f"no run found for branch '{branch}'")
    return inspect_run(ctx, branch, next((r for r in candidates if r.state in FAILED_STATES), candidates[0]))


def inspect_run(ctx: RepoContext, branch: str, run: RunInfo) -> Inspection:
    """One run of the branch, diagnosed, every secret redacted."""
    runs = ctx.runs(branch)
    secrets = ctx.settings.secrets()
    history = runs.history(run, HISTORY_ROWS)
    tail = runs.log_tail(run, TAIL_LINES)
    worktree = ctx.workspace.worktree_path(branch)
    result = diagnose_lines(
        tail, repo_root=worktree if worktree.exists() else ctx.repo, history=history, extra_secrets=secrets
    )
    run.config, run.summary = redact_value(run.config, secrets), redact_value(run.summary, secrets)
    return Inspection(run, redact_value(history, secrets), redact_lines(tail, secrets), result)


def diagnose_run(
    runs: Runs, run: RunInfo, *, worktree: Path, secrets: list[str], diverged: str | None = None
) -> Diagnosed:
    """The fix loop's look at a run. `diverged`: the bot stopped this run itself because its
    loss went bad, so its log shows no error; the loss curve is the evidence."""
    tail = runs.log_tail(run, TAIL_LINES)
    history = runs.history(run, LOOP_HISTORY_ROWS)
    diagnosis = diagnose_lines(tail, repo_root=worktree, history=history, extra_secrets=secrets)
    if diverged:
        diagnosis = Diagnosis(
            category="nan_loss",
            retryable=False,
            summary=diverged,
            evidence=redact_lines([f"step {r.get('_step')}: {r}" for r in history[-5:]], secrets),
        )
    return Diagnosed(run, diagnosis, redact_lines(tail, secrets), history)
