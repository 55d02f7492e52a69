"""The PR comment: what failed, why, what changed, and what happens next.

Templates are constants with a hidden marker so the bot can find its own comment again.
Everything passes through redaction before it leaves the process.
"""
from __future__ import annotations

import difflib
from pathlib import Path

from bot.diagnosis.model import Diagnosis
from bot.fixers.model import Edit, FixProposal

MARKER = "<!-- fix-and-relaunch:report -->"

FIX_TEMPLATE = """{marker}
**Fix applied:** {description}

Diagnosis: {diagnosis}
Root cause: {root_cause}

{next_step}

{diff}{log}| | |
|---|---|
| Attempt | {attempt} of {max_attempts} |
| Fixer | `{fixer}` |
| Failed run | {failed_run} |
| Commit | {commit} |
| New run | {new_run} |
{cost}"""

RELAUNCH_TEMPLATE = """{marker}
**Relaunched without a code change:** the failure looks transient.

Diagnosis: {diagnosis}

{next_step}

{log}| | |
|---|---|
| Attempt | {attempt} of {max_attempts} |
| Failed run | {failed_run} |
| New run | {new_run} |
"""

GAVE_UP_TEMPLATE = """{marker}
**Gave up:** {reason}

Diagnosis: {diagnosis}

{tried}
Nothing was pushed that was not validated. Over to a human.

{log}"""

DRY_RUN_TEMPLATE = """{marker}
**Dry run — nothing was changed.** Proposed fix: {description}

Diagnosis: {diagnosis}
Root cause: {root_cause}
Fixer: `{fixer}`

{diff}{log}"""

NONE_TEMPLATE = """{marker}
Nothing to fix: the latest run of `{branch}` ({run}) is {state}.
"""


def describe(diagnosis: Diagnosis) -> str:
    text = f"`{diagnosis.category}` — {diagnosis.summary}"
    loc = diagnosis.location
    if loc and loc.get("file"):
        text += f" (`{loc['file']}:{loc.get('line')}` in `{loc.get('function')}`)"
    return text


def log_block(lines: list[str], limit: int = 15) -> str:
    if not lines:
        return ""
    body = "\n".join(line.replace("```", "'''") for line in lines[-limit:])
    return f"<details><summary>Key log lines</summary>\n\n```\n{body}\n```\n</details>\n\n"


def diff_block(diff: str) -> str:
    if not diff:
        return ""
    return f"<details open><summary>Change</summary>\n\n```diff\n{diff.rstrip()}\n```\n</details>\n\n"


def render_diff(worktree: Path, edits: list[Edit]) -> str:
    """A unified diff of what the edits would do, computed in memory (nothing is written)."""
    after: dict[str, str] = {}
    before: dict[str, str] = {}
    for edit in edits:
        path = worktree / edit.path
        if edit.path not in before:
            before[edit.path] = path.read_text() if path.exists() else ""
        current = after.get(edit.path, before[edit.path])
        if edit.append or not edit.search:
            sep = "" if not current or current.endswith("\n") else "\n"
            after[edit.path] = current + sep + edit.replace
        else:
            after[edit.path] = current.replace(edit.search, edit.replace, 1)
    chunks = [
        "".join(difflib.unified_diff(before[p].splitlines(True), after[p].splitlines(True),
                                     f"a/{p}", f"b/{p}"))
        for p in before
    ]
    return "".join(chunks)


def cost_line(proposal: FixProposal) -> str:
    if not proposal.tokens:
        return ""
    t = proposal.tokens
    total = sum(v for v in t.values() if isinstance(v, int))
    cost = f", ${proposal.cost_usd:.4f}" if proposal.cost_usd is not None else ""
    return f"| Tokens | {total} ({t.get('input', 0)} in, {t.get('output', 0)} out){cost} |\n"


def run_link(run: dict | None) -> str:
    if not run:
        return "—"
    label = f"`{run['id']}`"
    return f"[{label}]({run['url']})" if run.get("url") else label
