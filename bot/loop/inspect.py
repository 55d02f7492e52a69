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
from bot.loop.branch_runs import BranchRuns
from bot.loop.model import Diagnosed
from bot.loop.ports import Runs
from bot.loop.repo_context import RepoContext
from bot.runs.model import FAILED_STATES, RunInfo

TAIL_LINES = 200
HISTORY_ROWS = 10
LOOP_HISTORY_ROWS = 20  # the loop also reads the loss curve from these
JUDGED_CANDIDATES = 5  # how many of the newest runs `diagnose` reads the loss of, looking for a failed one


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
    """The branch's latest failed run (its latest run when none failed), diagnosed. Failed by
    its state, or by its loss whatever its state: a run that exited 0 with a NaN loss counts."""
    runs = ctx.runs(branch)
    candidates = runs.runs(branch)
    if not candidates:
        raise BadInput(f"no run found for branch '{branch}'")
    return inspect_run(ctx, branch, latest_failed(runs, candidates))


def inspect_run(ctx: RepoContext, branch: str, run: RunInfo) -> Inspection:
    """One run of the branch, diagnosed, every secret redacted."""
    runs = ctx.runs(branch)
    secrets = ctx.settings.secrets()
    rows = runs.loss_rows(run, HISTORY_ROWS)
    tail = runs.log_tail(run, TAIL_LINES)
    worktree = ctx.workspace.worktree_path(branch)
    result = diagnose_lines(
        tail,
        repo_root=worktree if worktree.exists() else ctx.repo,
        history=rows,
        facts=runs.facts(run, rows),
        extra_secrets=secrets,
    )
    run.config, run.summary = redact_value(run.config, secrets), redact_value(run.summary, secrets)
    history = rows[-HISTORY_ROWS:]
    return Inspection(run, redact_value(history, secrets), redact_lines(tail, secrets), result)


def latest_failed(runs: BranchRuns, candidates: list[RunInfo]) -> RunInfo:
    """The newest run that failed by its state, or by its loss among the newest few."""
    for index, run in enumerate(candidates):
        if run.state in FAILED_STATES:
            return run
        if index < JUDGED_CANDIDATES and runs.judged(run).failed:
            return run
    return candidates[0]


def diagnose_run(
    runs: Runs, run: RunInfo, *, worktree: Path, secrets: list[str], diverged: str | None = None
) -> Diagnosed:
    """The fix loop's look at a run. `diverged`: the bot stopped this run itself because its
    loss went bad, so its log shows no error; the loss curve is the evidence."""
    tail = runs.log_tail(run, TAIL_LINES)
    history = runs.loss_rows(run, LOOP_HISTORY_ROWS)
    facts = runs.facts(run, history)
    diagnosis = diagnose_lines(tail, repo_root=worktree, history=history, facts=facts, extra_secrets=secrets)
    if diverged:
        diagnosis = Diagnosis(
            category="nan_loss",
            retryable=False,
            summary=diverged,
            evidence=redact_lines([f"step {r.get('_step')}: {r}" for r in history[-5:]], secrets),
        )
    return Diagnosed(run, diagnosis, redact_lines(tail, secrets), history)
