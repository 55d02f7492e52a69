"""Human-readable output of the read-only commands (`diagnose`, `history`, `runs`)."""
from __future__ import annotations

import json
from dataclasses import dataclass

from bot.diagnosis.model import Diagnosis
from bot.runs.model import FAILED_STATES, RunInfo

TAIL_LINES = 200
HISTORY_ROWS = 10


@dataclass
class Inspection:
    """What `diagnose --repo --branch` shows: the run, its numbers, its log, and the verdict."""
    run: RunInfo
    history: list[dict]
    log_tail: list[str]
    diagnosis: Diagnosis

    def to_json(self) -> dict:
        # The diagnosis keys stay at the top level: that is the DESIGN.md contract.
        return {**self.diagnosis.to_json(), "run": self.run.to_json(), "config": self.run.config,
                "summary_metrics": self.run.summary, "history": self.history, "log_tail": self.log_tail}

    def text(self) -> str:
        parts = [
            f"Run {self.run.id} on {self.run.branch or '?'} — {self.run.state}"
            f"{f' (exit code {self.run.exit_code})' if self.run.exit_code is not None else ''}",
            section("Config", json.dumps(self.run.config, indent=2, default=str)),
            section("Summary", json.dumps(self.run.summary, indent=2, default=str)),
            section(f"Last {len(self.history)} history steps", table(self.history)),
            section(f"Log tail ({len(self.log_tail)} lines)", "\n".join(self.log_tail[-60:])),
            section("Diagnosis", diagnosis(self.diagnosis)),
        ]
        return "\n\n".join(parts)


def inspect_latest_failed(ctx, branch: str) -> Inspection:
    from bot.diagnosis import diagnose_lines
    from bot.core.secrets import redact_lines, redact_value

    runs = ctx.runs(branch)
    candidates = runs.runs(branch)
    if not candidates:
        from bot.core.errors import BadInput

        raise BadInput(f"no run found for branch '{branch}'")
    run = next((r for r in candidates if r.state in FAILED_STATES), candidates[0])
    secrets = ctx.settings.secrets()
    history = runs.history(run, HISTORY_ROWS)
    tail = runs.log_tail(run, TAIL_LINES)
    worktree = ctx.workspace.worktree_path(branch)
    result = diagnose_lines(tail, repo_root=worktree if worktree.exists() else ctx.repo,
                            history=history, extra_secrets=secrets)
    run.config, run.summary = redact_value(run.config, secrets), redact_value(run.summary, secrets)
    return Inspection(run, redact_value(history, secrets), redact_lines(tail, secrets), result)


def section(title: str, body: str) -> str:
    return f"== {title} ==\n{body or '(none)'}"


def diagnosis(d: Diagnosis) -> str:
    lines = [f"category: {d.category}{' (retryable)' if d.retryable else ''}", f"summary: {d.summary}"]
    if d.exception:
        lines.append(f"exception: {d.exception.get('type')}: {d.exception.get('message')}")
    if d.location:
        lines.append(f"location: {d.location.get('file')}:{d.location.get('line')} in {d.location.get('function')}")
    if d.evidence:
        lines.append("evidence:")
        lines += [f"  {line}" for line in d.evidence]
    return "\n".join(lines)


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no history)"
    keys = list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_") or k == "_step"))
    keys.sort(key=lambda k: (k != "_step", k))
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def runs_table(runs: list[RunInfo]) -> str:
    if not runs:
        return "(no runs)"
    rows = [{"id": r.id, "branch": r.branch or "", "state": r.state, "steps": r.steps,
             "exit": "" if r.exit_code is None else r.exit_code, "source": r.source} for r in runs]
    return table(rows)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
