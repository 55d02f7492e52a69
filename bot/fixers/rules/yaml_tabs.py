"""A YAML file indented with tabs, which YAML forbids (PyYAML and ruamel: `found character '\\t'
that cannot start any token`, `in "configs/x.yaml", line 24`) → the same indentation in spaces,
the file's own unit (its smallest indent, else two) per tab, on every tab-indented line of that
file: the next tab would stop the next run.
"""

from __future__ import annotations

import re

from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import may_edit
from bot.fixers.text import failure_texts, line_edit, read_text, repo_path

_TAB = re.compile(r"found character '\\t' that cannot start any token")
_WHERE = re.compile(r'in "(?P<path>[^"<>]+\.ya?ml)", line (?P<line>\d+)')


def _lead(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" \t"))]


def indent_with_spaces(ctx: FixContext) -> FixProposal | None:
    # The message's lines after the first (the character, the file) are in the log, not the diagnosis.
    texts = [*failure_texts(ctx.diagnosis), *reversed(ctx.log_tail)]
    if not any(_TAB.search(text) for text in texts):
        return None
    where = next((found for text in texts if (found := _WHERE.search(text))), None)
    if where is None:
        return None
    rel = repo_path(ctx.worktree, where["path"])
    text = read_text(ctx.worktree, rel) if rel else None
    if rel is None or text is None or not may_edit(rel, ctx.config):
        return None
    lines = text.split("\n")
    unit = _indent_unit(lines)
    changes = {n: _spaced(line, unit) for n, line in enumerate(lines, start=1) if "\t" in _lead(line)}
    if not changes:
        return None
    return FixProposal(
        fixer="rule:yaml-spaces",
        description=f"indent {rel} with spaces instead of tabs",
        root_cause=f"{rel} indents with tabs, which YAML does not allow, so it cannot be parsed.",
        edits=line_edit(rel, text, changes),
        evidence=[
            next(t for t in texts if _TAB.search(t)).strip(),
            where[0],
            f"{rel}: {len(changes)} tab-indented line(s)",
        ],
    )


def _indent_unit(lines: list[str]) -> int:
    widths = [len(lead) for line in lines if line.strip() and (lead := _lead(line)) and "\t" not in lead]
    return min(widths, default=2)


def _spaced(line: str, unit: int) -> str:
    lead = _lead(line)
    return lead.replace("\t", " " * unit) + line[len(lead) :]
