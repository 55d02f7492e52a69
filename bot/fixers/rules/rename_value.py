"""A value the branch wrote that the code refuses, where the refusal names the value meant →
that value, on the lines the branch wrote it (`--env-id Cartpole-v0` → `--env-id CartPole-v0`).

The refusal is the evidence: a library's own suggestion (gymnasium's ``Environment `Cartpole`
doesn't exist. Did you mean: `CartPole`?``) or argparse's and tyro's choices (`invalid choice:
'adamm' (choose from 'adam', 'sgd')`: the one close choice). Only lines the branch added or
changed hold the value it wrote; a value the base branch has too is not the experiment's, so it
is not touched. A refused key is rename-key's, and Python's own hint for a misspelt name
(`name 'lenght' is not defined. Did you mean: 'length'?`, a missing key to the classifier) is no
evidence of intent, only the nearest spelling: neither is read here.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from bot.diagnosis.model import KeyProblem
from bot.fixers.base_value import base_text
from bot.fixers.imports import CUTOFF
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.respell import respell
from bot.fixers.text import failure_texts

_QUOTED = r"[`'\"]([\w.:/-]+)[`'\"]"
_SUGGESTED = re.compile(
    rf"{_QUOTED}[^`'\"]*?(?:doesn't|does not|is not|isn't|not found|unknown|invalid).*?did you mean:?\s*{_QUOTED}", re.I
)
_CHOICE = re.compile(r"invalid choice:\s*'?([^'\s(]+)'?\s*\(choose from ([^)]*)\)")
FILES = (".sh", ".yaml", ".yml", ".py", ".toml", ".json", ".cfg")  # launch scripts, configs, declared defaults
SUGGESTION_CUTOFF = 0.6  # a library's suggestion is evidence itself; this only keeps out a different name


@dataclass(frozen=True)
class Refused:
    value: str
    meant: str
    line: str  # the message, for the evidence


def rename_refused_value(ctx: FixContext) -> FixProposal | None:
    refused = _refused(ctx)
    if refused is None:
        return None
    spelled = re.compile(rf"(?<![\w.]){re.escape(refused.value)}(?!\w)")  # a whole word
    edits, spots = respell(ctx, FILES, spelled, refused.meant, kept=lambda rel: _on_base(ctx, rel))
    if not edits:
        return None
    files = ", ".join(sorted({e.path for e in edits}))
    return FixProposal(
        fixer="rule:rename-value",
        description=f"use {refused.meant} instead of the unknown {refused.value} in {files}",
        root_cause=f"The branch sets {refused.value}, which the code refuses; it names {refused.meant} as the one meant.",
        edits=edits,
        evidence=[refused.line, *spots],
    )


def _refused(ctx: FixContext) -> Refused | None:
    key = ctx.diagnosis.config_key
    if key is not None and key.problem != KeyProblem.INVALID:
        return None  # a key missing or unknown, not its value
    for text in failure_texts(ctx.diagnosis):
        found = _SUGGESTED.search(text)
        if found and difflib.SequenceMatcher(None, found[1], found[2]).ratio() >= SUGGESTION_CUTOFF:
            return Refused(found[1], found[2], text.strip())
        found = _CHOICE.search(text)
        if found:
            choices = [c.strip(" '\"") for c in found[2].split(",")]
            close = difflib.get_close_matches(found[1], choices, n=2, cutoff=CUTOFF)
            if len(close) == 1:
                return Refused(found[1], close[0], text.strip())
    return None


def _on_base(ctx: FixContext, rel: str) -> set[str]:
    """The lines `rel` has on the base branch: the value there is not the branch's doing."""
    base = base_text(ctx.worktree, ctx.base_branch, rel)
    return set(base[1].split("\n")) if base else set()
