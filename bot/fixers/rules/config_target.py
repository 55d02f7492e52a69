"""A dotted path a config names for the code to load that the repo does not define (Hydra's
`_target_: src.models.components.dropout_net.DropoutDenseNet`) → the one it does
(`src.models.components.dropout_dense_net.DropoutDenseNet`), in the config files that spell it.

Hydra says `Error loading 'a.b.C'` (1.2 on) or `Error locating target 'a.b.C'` (1.1). Only the
repo's own code is searched: a path into a third-party package (`torch.optim.Adamm`) is left
alone, as it cannot be checked without importing that package. Each missing part becomes the one
name close to it at its level (imports.CUTOFF) or, for a missing module, the one sibling module
that defines the path's last name: `dropout_net` is far from `dropout_dense_net` as spelling goes,
but only dropout_dense_net.py defines DropoutDenseNet.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from bot.fixers.distributions import distribution_for
from bot.fixers.imports import CUTOFF, defined_names, local_package_dir, modules_in
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.respell import respell
from bot.fixers.text import failure_texts

_TARGET = re.compile(r"Error (?:loading|locating target) '([\w.]+)'")
CONFIG_FILES = (".yaml", ".yml", ".sh")  # config files and the launch scripts that override them


def closest_target(ctx: FixContext) -> FixProposal | None:
    found = _failed_target(ctx)
    if found is None:
        return None
    target, line = found
    parts = target.split(".")
    base = local_package_dir(ctx.worktree, parts[0])
    if base is None or (parts[0] not in modules_in(base) and distribution_for(parts[0], guess=False)):
        return None  # not the repo's code, or a known third-party package that merely looks like it
    fixed = _resolve(base, parts)
    if fixed is None or fixed == parts:
        return None
    new = ".".join(fixed)
    spelled = re.compile(rf"(?<![\w.]){re.escape(target)}(?![\w.])")  # the whole path, not a prefix
    edits, spots = respell(ctx, CONFIG_FILES, spelled, new)
    if not edits:
        return None
    return FixProposal(
        fixer="rule:closest-target",
        description=f"load {new} instead of the missing {target} in {', '.join(sorted({e.path for e in edits}))}",
        root_cause=f"The config names {target} for the code to load, which the repo does not define; {new} is the closest that exists.",
        edits=edits,
        evidence=[line, *spots],
    )


def _failed_target(ctx: FixContext) -> tuple[str, str] | None:
    for text in failure_texts(ctx.diagnosis):
        found = _TARGET.search(text)
        if found:
            return found.group(1), text.strip()
    return None


def _resolve(base: Path, parts: list[str]) -> list[str] | None:
    """`parts` with each missing module or name replaced by the one that exists; None when one
    has no such replacement. Past the first name a module defines (a class), parts are kept."""
    where, out = base, []
    for i, part in enumerate(parts):
        modules = modules_in(where) if where.is_dir() else []
        names = _names(where)
        if part not in modules and part not in names:
            meant = _closest(where, part, parts[-1] if i < len(parts) - 1 else None)
            if meant is None:
                return None
            part = meant
        out.append(part)
        if part not in modules:
            return out + parts[i + 1 :]
        where = _child(where, part)
    return out


def _closest(where: Path, part: str, last: str | None) -> str | None:
    """The module or name at `where` that `part` meant: the one related sibling module that
    defines `last` (the path's final name), else the one close spelling."""
    modules = modules_in(where) if where.is_dir() else []
    defining = [m for m in modules if last is not None and _related(part, m) and last in _names(_child(where, m))]
    if len(defining) == 1:
        return defining[0]
    close = difflib.get_close_matches(part, modules + _names(where), n=2, cutoff=CUTOFF)
    return close[0] if len(close) == 1 else None


def _related(a: str, b: str) -> bool:
    """One name's words are all the other's (`dropout_net`, `dropout_dense_net`), or they are spelt
    alike: not `conv_net` for `dense_net`, a module never committed is no typo of another."""
    wa, wb = (set(re.findall(r"[a-z]+|\d+", n.lower())) for n in (a, b))
    return wa <= wb or wb <= wa or difflib.SequenceMatcher(None, a, b).ratio() >= CUTOFF


def _child(where: Path, name: str) -> Path:
    return where / name if (where / name).is_dir() else where / f"{name}.py"


def _names(where: Path) -> list[str]:
    """What a module (a .py file, or a package's __init__.py) defines at its top level."""
    source = where / "__init__.py" if where.is_dir() else where
    return defined_names(source.read_text(encoding="utf-8", errors="replace")) if source.is_file() else []
