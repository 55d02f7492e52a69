"""What the commands print: JSON on request, otherwise tables and sections for a terminal."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from datetime import datetime

from bot.core.secrets import HasSecrets, Redactor
from bot.loop.inspect import Inspection
from bot.loop.repo_context import RepoContext
from bot.runs.model import RunInfo

RUN_COLUMNS = ("id", "branch", "state", "steps", "started", "commit", "backend")


def print_json(data: object, settings: HasSecrets) -> None:
    """`data` as JSON on stdout, every string in it redacted with the settings' secrets, last
    (after `default=str` has turned other objects into strings)."""
    plain = json.loads(json.dumps(data, default=str))
    json.dump(Redactor.from_settings(settings).value(plain), sys.stdout, indent=2)
    sys.stdout.write("\n")


def print_text(text: str, settings: HasSecrets) -> None:
    """Text for the terminal that may hold others' strings (a run's logged values), redacted."""
    print(Redactor.from_settings(settings).text(text))


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


def runs_table(runs: list[RunInfo], backends: Mapping[str, str], now: float | None = None) -> str:
    """The runs, newest first, as a table a human reads: `backends` maps a launch record's id
    to its backend (a run the bot did not launch has none)."""
    if not runs:
        return "(no runs)"
    now = time.time() if now is None else now
    rows = [
        {
            "id": r.id,
            "branch": r.branch or "",
            "state": r.state if r.exit_code in (None, 0) else f"{r.state} ({r.exit_code})",
            "steps": r.steps,
            "started": human_time(r.created_at, now),
            "commit": (r.commit or "")[:8],
            "backend": backends.get(r.record_id or "", "—"),
        }
        for r in runs
    ]
    return aligned(rows, RUN_COLUMNS)


def aligned(rows: list[dict], columns: tuple[str, ...]) -> str:
    cells = [[_cell(row.get(k)) for k in columns] for row in rows]
    widths = [max(len(k), *(len(r[i]) for r in cells)) for i, k in enumerate(columns)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def human_time(when: float | None, now: float) -> str:
    """`12s ago`, `5 min ago`, `3 h ago`, then the local date and time."""
    if when is None:
        return ""
    ago = now - when
    if 0 <= ago < 60:
        return f"{int(ago)}s ago"
    if 0 <= ago < 3600:
        return f"{int(ago // 60)} min ago"
    if 0 <= ago < 86400:
        return f"{int(ago // 3600)} h ago"
    return datetime.fromtimestamp(when).strftime("%Y-%m-%d %H:%M")


def progress_printer(settings: HasSecrets) -> Callable[[str], None]:
    """Prints a progress line on stderr, redacted (it may quote the model's description)."""
    redactor = Redactor.from_settings(settings)
    return lambda line: print(f"· {redactor.text(line)}", file=sys.stderr)


def redactor(settings: HasSecrets) -> Callable[[str], str]:
    """What progress lines go through before they are printed: a step may quote a log or a model."""
    return Redactor.from_settings(settings).text


def note_uncommitted(ctx: RepoContext, branch: str, say: Callable[[str], None], what: str) -> None:
    """Say so when the user's checkout of the branch has uncommitted changes: the bot works on
    the committed code, so they are not part of `what` (the fix, a launched run)."""
    checkout = ctx.workspace.checkout(branch)
    if checkout is None or checkout.clean:
        return
    say(
        f"your checkout of {branch} at {checkout.path} has {checkout.describe()}; {what} made from the "
        f"committed code of {branch}, without them (a failure that came from them may not show again)"
    )


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else str(value)
