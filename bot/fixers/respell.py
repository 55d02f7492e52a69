"""Edits that write one name or value where the repo's files spell another, line by line: the
shared step of the rules that correct a spelling wherever it is written (a `_target_` path, a
refused value)."""

from __future__ import annotations

import re
from collections.abc import Callable

from bot.fixers.model import Edit, FixContext
from bot.fixers.patch import may_edit
from bot.fixers.text import line_edit, read_text, repo_files


def respell(
    ctx: FixContext,
    suffixes: tuple[str, ...],
    spelled: re.Pattern[str],
    new: str,
    *,
    kept: Callable[[str], set[str]] | None = None,
) -> tuple[list[Edit], list[str]]:
    """Edits of each file ending in `suffixes` that the config lets the bot edit, writing `new` for
    every match of `spelled`, except on lines `kept(rel)` holds; and `rel:line: text` of each line
    changed, for the evidence."""
    edits: list[Edit] = []
    spots: list[str] = []
    for rel in repo_files(ctx.worktree, suffixes):
        text = read_text(ctx.worktree, rel)
        if text is None or not spelled.search(text) or not may_edit(rel, ctx.config):
            continue
        keep = kept(rel) if kept else set()
        lines = text.split("\n")
        changes = {
            n: spelled.sub(new, ln) for n, ln in enumerate(lines, start=1) if spelled.search(ln) and ln not in keep
        }
        if changes:
            edits += line_edit(rel, text, changes)
            spots += [f"{rel}:{n}: {lines[n - 1].strip()}" for n in sorted(changes)]
    return edits, spots
