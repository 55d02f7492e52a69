"""The code reads a config key nobody declares, on a line the branch edited from one of the base
branch's that read a key of nearly the same name → read the base's key again
(`args.log_intervall` where main read `args.log_interval`).

Only the line's edit is evidence: a missing key close to a declared one may as well be a new
hyperparameter (`args.beta` beside `args.beta1`), which `add_config_default` declares when the
branch documents its value, and nothing here renames; so is an edit to a variant of the name
(`args.lr` → `args.lr2`, `args.dropout` → `args.dropout_attn`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bot.fixers.base_value import base_text
from bot.fixers.config_subject import SubjectKind, config_subject
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import may_edit
from bot.fixers.text import failing_file, line_edit, read_text

CUTOFF = 0.75  # as close as an unknown flag must be to be renamed (rename_key)
_TOKEN = re.compile(r"\w+|\s+|.")
_MISSING = (SubjectKind.ATTRIBUTE, SubjectKind.GLOBAL, SubjectKind.KEY)


@dataclass(frozen=True)
class Misspelt:
    path: str
    line: int  # 1-based, in the branch's file
    new_line: str
    old: str  # the name the branch's line reads
    new: str  # the name the base's line read
    base_ref: str
    base_line: str


def restore_misspelt_read(ctx: FixContext) -> FixProposal | None:
    found = _misspelt(ctx)
    if found is None or not may_edit(found.path, ctx.config):
        return None
    text = read_text(ctx.worktree, found.path) or ""
    branch = found.base_ref.removeprefix("origin/")
    return FixProposal(
        fixer="rule:misspelt-read",
        description=f"read {found.new} instead of the undeclared {found.old} in {found.path} (as {branch} did)",
        root_cause=(
            f"The branch edited {found.path}:{found.line}, which read {found.new} on {branch}, into reading "
            f"{found.old}, which nothing declares."
        ),
        edits=line_edit(found.path, text, {found.line: found.new_line}),
        evidence=list(ctx.diagnosis.evidence[-2:]) + [f"{found.base_ref}:{found.path}: {found.base_line.strip()}"],
    )


def _misspelt(ctx: FixContext) -> Misspelt | None:
    subject = config_subject(ctx.diagnosis)
    if subject is None or subject.kind not in _MISSING:
        return None
    name = subject.name.split(".")[-1]
    path = failing_file(ctx)
    number = (ctx.diagnosis.location or {}).get("line")
    text = read_text(ctx.worktree, path) if path else None
    base = base_text(ctx.worktree, ctx.base_branch, path) if path else None
    if path is None or not isinstance(number, int) or text is None or base is None:
        return None
    lines = text.split("\n")
    if not 0 < number <= len(lines):
        return None
    ours = _TOKEN.findall(lines[number - 1].strip())
    renames = {r for r in (_renamed(ours, _TOKEN.findall(b.strip()), name) for b in base[1].split("\n")) if r}
    if len(renames) != 1:
        return None  # the line is new, or was edited from several lines that read other keys
    new, base_line = renames.pop()
    new_line = "".join(new if t == name else t for t in _TOKEN.findall(lines[number - 1]))
    return Misspelt(path, number, new_line, name, new, base[0], base_line)


def _renamed(ours: list[str], theirs: list[str], name: str) -> tuple[str, str] | None:
    """(their name, their line) when our line is theirs edited, and one of the edits puts `name`
    where theirs had a name close to it (other edits may come with it: `betas=(0.9, 0.95)` and a
    misspelt `args.weigth_decay` on one line). Edited: most of our tokens are still theirs."""
    matcher = difflib.SequenceMatcher(None, theirs, ours, autojunk=False)
    kept = sum(_chars(ours[j1:j2]) for tag, _, _, j1, j2 in matcher.get_opcodes() if tag == "equal")
    if 2 * kept < _chars(ours):
        return None
    swaps = [
        (theirs[i1 + k], ours[j1 + k])
        for tag, i1, i2, j1, j2 in matcher.get_opcodes()
        if tag == "replace" and i2 - i1 == j2 - j1
        for k in range(i2 - i1)
    ]
    named = {old for old, new in swaps if new == name}
    if len(named) != 1 or name in theirs:
        return None
    new = named.pop()
    if not re.fullmatch(r"\w+", new) or difflib.SequenceMatcher(None, name, new).ratio() < CUTOFF:
        return None
    return None if _variant(name, new) else (new, "".join(theirs))


def _chars(tokens: list[str]) -> int:
    return sum(len(token) for token in tokens if not token.isspace())


def _variant(a: str, b: str) -> bool:
    """Whether one name is the other with a word or number added or changed (`lr2`, `beta_2`,
    `dropout_attn`): a new hyperparameter beside the old one, not a misspelling of it."""
    wa, wb = (re.findall(r"[a-z]+|\d+", n.lower()) for n in (a, b))
    short, long = sorted((wa, wb), key=len)
    if short != long and (long[: len(short)] == short or long[len(long) - len(short) :] == short):
        return True
    return len(wa) == len(wb) and all(x == y or (x.isdigit() and y.isdigit()) for x, y in zip(wa, wb, strict=True))
