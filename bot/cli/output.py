"""What the commands print: JSON on request, otherwise tables and sections for a terminal."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

from bot.core.secrets import HasSecrets, Redactor
from bot.loop.inspect import Inspection
from bot.runs.model import RunInfo


def print_json(data: object, settings: HasSecrets) -> None:
    """`data` as JSON on stdout, every string in it redacted with the settings' secrets, last
    (after `default=str` has turned other objects into strings)."""
    plain = json.loads(json.dumps(data, default=str))
    json.dump(Redactor.from_settings(settings).value(plain), sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_text(text: str, settings: HasSecrets) -> None:
    """Text for the terminal that may hold others' strings (a run's logged values), redacted."""
    print(Redactor.from_settings(settings).text(text))


def progress_printer(settings: HasSecrets) -> Callable[[str], None]:
    """Prints a progress line on stderr, redacted (it may quote the model's description)."""
    redactor = Redactor.from_settings(settings)
    return lambda line: print(f"· {redactor.text(line)}", file=sys.stderr)


def inspection(found: Inspection) -> str:
    """What `diagnose --repo --branch` prints."""
    run = found.run
    parts = [
        (
            f"Run {run.id} on {run.branch or '?'} — {run.state}"
            f"{f' (exit code {run.exit_code})' if run.exit_code is not None else ''}"
        ),
        section("Config", json.dumps(run.config, indent=2, default=str)),
        section("Summary", json.dumps(run.summary, indent=2, default=str)),
        section(f"Last {len(found.history)} history steps", table(found.history)),
        section(f"Log tail ({len(found.log_tail)} lines)", "\n".join(found.log_tail[-60:])),
        section("Diagnosis", found.diagnosis.text()),
    ]
    return "\n\n".join(parts)


def section(title: str, body: str) -> str:
    return f"== {title} ==\n{body or '(none)'}"


def table(rows: list[dict]) -> str:
    if not rows:
        return "(no history)"
    keys = list(dict.fromkeys(k for row in rows for k in row if not k.startswith("_") or k == "_step"))
    keys.sort(key=lambda k: (k != "_step", k))
    cells = [[_cell(row.get(k)) for k in keys] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=False))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) for r in cells]
    return "\n".join(lines)


def runs_table(runs: list[RunInfo]) -> str:
    if not runs:
        return "(no runs)"
    rows = [
        {
            "id": r.id,
            "branch": r.branch or "",
            "state": r.state,
            "steps": r.steps,
            "exit": "" if r.exit_code is None else r.exit_code,
            "source": r.source,
        }
        for r in runs
    ]
    return table(rows)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
