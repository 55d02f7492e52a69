"""The PR comment: what failed, why, what changed, and what happens next.

Templates are constants with a hidden marker so the bot can find its own comment again.
Text that comes from a log, a model or a PR is untrusted: it is escaped so it cannot mention
people, render HTML or links, or break out of a code block. The bodies here are not yet
redacted: `bot.loop.comments.Comments` redacts each one as its last step, after this escaping
(the redactor reads through the escapes), and the server redacts again as it posts.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import Path

from bot.diagnosis.model import Diagnosis
from bot.fixers.llm.costs import TOKEN_KINDS, usage_text
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
| Fixer | {fixer} |
| Failed run | {failed_run} |
| Commit | {commit} |
| New run | {new_run} |
{cost}"""

RELAUNCH_TEMPLATE = """{marker}
**Relaunched without a code change:** {why}.

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
Fixer: {fixer}

{diff}{log}"""

NONE_TEMPLATE = """{marker}
Nothing to fix: the latest run of {branch} ({run}) is {state}.
"""

STOPPED_TEMPLATE = """{marker}
**Stopped:** {reason}

Nothing more was done. Fix the cause and comment `/fix-and-relaunch` again.
"""

_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def inline(text: str) -> str:
    """Untrusted text as plain inline markdown: no HTML, links, emphasis, tables or mentions."""
    text = " ".join(str(text).split())
    text = _INLINE_SPECIAL.sub(r"\\\1", text)
    return text.replace("@", "@\u200b")  # a zero-width space: no notification


def code(text: str) -> str:
    """Untrusted text as one inline code span, whatever backticks it holds."""
    text = " ".join(str(text).split()).replace("@", "@\u200b")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def fenced(body: str, info: str = "") -> str:
    """A code block whose fence is longer than any run of backticks inside it."""
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{body.rstrip()}\n{fence}"


def describe(diagnosis: Diagnosis) -> str:
    text = f"`{diagnosis.category}` — {inline(diagnosis.summary)}"
    loc = diagnosis.location
    if loc and loc.get("file"):
        text += f" ({inline(loc['file'])}:{loc.get('line')} in {inline(loc.get('function') or '?')})"
    return text


def log_block(lines: Iterable[str], limit: int = 15) -> str:
    lines = list(lines)[-limit:]
    if not lines:
        return ""
    return f"<details><summary>Key log lines</summary>\n\n{fenced(chr(10).join(lines))}\n</details>\n\n"


def diff_block(diff: str) -> str:
    if not diff:
        return ""
    return f"<details open><summary>Change</summary>\n\n{fenced(diff, 'diff')}\n</details>\n\n"


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
    return "".join(
        "".join(difflib.unified_diff(before[p].splitlines(True), after[p].splitlines(True), f"a/{p}", f"b/{p}"))
        for p in before
    )


def cost_line(proposal: FixProposal) -> str:
    if not proposal.tokens:
        return ""
    t = proposal.tokens
    total = sum(t.get(kind, 0) for kind in TOKEN_KINDS)
    requests = f" over {t['requests']} requests" if t.get("requests", 1) > 1 else ""
    return f"| Tokens | {total}{requests} ({usage_text(t, proposal.cost_usd)}) |\n"


def run_link(run: dict | None) -> str:
    if not run:
        return "—"
    label = f"`{run['id']}`"
    return f"[{label}]({run['url']})" if run.get("url") else label


# -- the bodies the pipeline posts ---------------------------------------------------------


def fix_body(
    *,
    proposal: FixProposal,
    diagnosis: Diagnosis,
    next_step: str,
    diff: str,
    log: list[str],
    attempt: int,
    max_attempts: int,
    failed_run: dict,
    commit: str | None,
    new_run: dict | None,
) -> str:
    return FIX_TEMPLATE.format(
        marker=MARKER,
        description=inline(proposal.description),
        diagnosis=describe(diagnosis),
        root_cause=inline(proposal.root_cause),
        next_step=next_step,
        diff=diff_block(diff),
        log=log_block(diagnosis.evidence or log[-10:]),
        attempt=attempt,
        max_attempts=max_attempts,
        fixer=code(proposal.fixer),
        failed_run=run_link(failed_run),
        commit=f"`{commit[:10]}`" if commit else "—",
        new_run=run_link(new_run),
        cost=cost_line(proposal),
    )


def relaunch_body(
    *,
    diagnosis: Diagnosis,
    next_step: str,
    attempt: int,
    max_attempts: int,
    failed_run: dict,
    new_run: dict | None,
    why: str = "the failure looks transient",
) -> str:
    return RELAUNCH_TEMPLATE.format(
        marker=MARKER,
        why=why,
        diagnosis=describe(diagnosis),
        next_step=next_step,
        log=log_block(diagnosis.evidence),
        attempt=attempt,
        max_attempts=max_attempts,
        failed_run=run_link(failed_run),
        new_run=run_link(new_run),
    )


def gave_up_body(*, reason: str, diagnosis: dict | None, attempts: list[dict]) -> str:
    tried = "".join(_tried_line(a) for a in attempts)
    diagnosis = diagnosis or {}
    return GAVE_UP_TEMPLATE.format(
        marker=MARKER,
        reason=inline(reason),
        diagnosis=f"`{diagnosis.get('category', 'unknown')}` — {inline(diagnosis.get('summary', 'not diagnosed'))}",
        tried=f"What was tried:\n{tried}" if tried else "Nothing was tried.",
        log=log_block(diagnosis.get("evidence") or []),
    )


def dry_run_body(*, proposal: FixProposal, diagnosis: Diagnosis, diff: str) -> str:
    return DRY_RUN_TEMPLATE.format(
        marker=MARKER,
        description=inline(proposal.description),
        diagnosis=describe(diagnosis),
        root_cause=inline(proposal.root_cause),
        fixer=code(proposal.fixer),
        diff=diff_block(diff),
        log=log_block(diagnosis.evidence),
    )


def none_body(*, branch: str, run: dict) -> str:
    return NONE_TEMPLATE.format(marker=MARKER, branch=code(branch), run=code(run["id"]), state=run["state"])


def stopped_body(reason: str) -> str:
    return STOPPED_TEMPLATE.format(marker=MARKER, reason=inline(reason))


def _tried_line(attempt: dict) -> str:
    line = (
        f"- attempt {attempt['number']}: `{attempt['category']}` in run `{attempt['failed_run']}` → "
        f"{code(attempt['fixer']) if attempt['fixer'] else 'no fix'}"
    )
    if attempt.get("commit"):
        line += f" ({attempt['commit'][:8]})"
    if attempt.get("problem"):
        line += f", then: {inline(attempt['problem'])}"
    return line + "\n"
