"""Human-readable output of the read-only commands (`diagnose`, `history`, `runs`)."""
from __future__ import annotations

import json

from bot.diagnosis.model import Diagnosis
from bot.loop.inspect import Inspection
from bot.runs.model import RunInfo


def inspection(found: Inspection) -> str:
    """What `diagnose --repo --branch` prints."""
    run = found.run
    parts = [
        (f"Run {run.id} on {run.branch or '?'} — {run.state}"
         f"{f' (exit code {run.exit_code})' if run.exit_code is not None else ''}"),
        section("Config", json.dumps(run.config, indent=2, default=str)),
        section("Summary", json.dumps(run.summary, indent=2, default=str)),
        section(f"Last {len(found.history)} history steps", table(found.history)),
        section(f"Log tail ({len(found.log_tail)} lines)", "\n".join(found.log_tail[-60:])),
        section("Diagnosis", diagnosis(found.diagnosis)),
    ]
    return "\n\n".join(parts)


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
