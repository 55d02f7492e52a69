"""OOM → halve the batch size (doubling gradient accumulation); NaN loss → lower the learning rate.

Each changes the value where the failed run got it: a flag in a launch script, the config file
the launch names, else the declared default (argparse, dataclass, global, dict or YAML). A value
set in `launch.command` itself is not the fix's to change (`.github/**` is never edited), so
the rule then proposes nothing rather than change a default the flag overrides.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

from bot.fixers.base_value import base_default, base_site
from bot.fixers.config_sites import Site, best_site, file_sites, find_sites, number
from bot.fixers.llm.prompt import config_files, frames_in_repo
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import may_edit
from bot.fixers.text import line_edit, read_text
from bot.fixers.value_source import sites_in_effect

BATCH_KEYS = ("batch_size", "train_batch_size", "per_device_train_batch_size")
ACCUM_KEYS = ("grad_accum", "grad_accum_steps", "gradient_accumulation_steps", "accumulate_grad_batches")
LR_KEYS = ("lr", "learning_rate")


def lower_batch_size(ctx: FixContext) -> FixProposal | None:
    batch = source_site(ctx, BATCH_KEYS, lambda s: _count(s) is not None)
    old = _count(batch) if batch else None
    if batch is None or old is None or old <= 1:
        return None
    text = read_text(ctx.worktree, batch.path)
    if text is None:  # find_sites has just read it; gone or unreadable since
        return None
    changes = {batch.line: batch.with_value(str(old // 2))}
    accum = _accum_beside(ctx, batch) if batch.kind != "flag" else None
    accum_count = _count(accum) if accum else None  # never None for a site _accum_beside picks
    if accum is not None and accum_count is not None:
        line = changes.get(accum.line, accum.line_text)
        shift = len(line) - len(accum.line_text)  # same line as batch_size: columns moved
        col = accum.col + (shift if accum.col > batch.col else 0)
        changes[accum.line] = line[:col] + str(accum_count * 2) + line[col + len(accum.text) :]
    description = f"halve batch size {old} → {old // 2} in {batch.path}"
    if accum is not None:
        description += f" and double {accum.key} to keep the effective batch"
    return FixProposal(
        fixer="rule:lower-batch-size",
        description=description,
        root_cause=f"The run ran out of accelerator memory with {batch.key}={old}.",
        edits=line_edit(batch.path, text, changes),
        evidence=_evidence(ctx, [batch] + ([accum] if accum else [])),
    )


def source_site(ctx: FixContext, keys: tuple[str, ...], usable: Callable[[Site], bool]) -> Site | None:
    """The site the failed run's value came from: what the launch sets, else the declared
    default that `best_site` picks. None when that place may not be edited."""
    in_effect = [s for s in sites_in_effect(ctx.worktree, ctx.config, keys) if usable(s)]
    if in_effect:
        return in_effect[0] if may_edit(in_effect[0].path, ctx.config) else None
    sites = [s for s in find_sites(ctx.worktree, keys) if usable(s)]
    return best_site(sites, ctx.run_config, preferred_paths(ctx, sites))


def preferred_paths(ctx: FixContext, sites: list[Site]) -> list[set[str]]:
    """Where to look when the run did not log the key: the traceback's files, then the config files."""
    traceback_files = {path for path, _ in frames_in_repo(ctx.worktree, ctx)}
    configs = set(config_files(ctx.worktree)) | {s.path for s in sites if "config" in s.path.lower()}
    return [traceback_files, configs]


def _accum_beside(ctx: FixContext, batch: Site) -> Site | None:
    """Gradient accumulation set beside the batch size (same dict, call, parser or YAML file)."""
    sites = [
        s for s in file_sites(ctx.worktree, batch.path, ACCUM_KEYS) if s.scope == batch.scope and (_count(s) or 0) >= 1
    ]
    return best_site(sites, ctx.run_config)


def _count(site: Site) -> int | None:
    """The site's value when it is a whole number (a batch size, an accumulation count)."""
    value = number(site.text)
    return value if isinstance(value, int) else None


def lower_lr(ctx: FixContext) -> FixProposal | None:
    site = source_site(ctx, LR_KEYS, lambda s: (number(s.text) or 0) > 0)
    if site is None:
        return None
    text = read_text(ctx.worktree, site.path)
    if text is None:  # find_sites has just read it; gone or unreadable since
        return None
    found = base_site(ctx.worktree, ctx.config, ctx.base_branch, site)
    # A flag the branch added overrides the default the base's runs used: that is the base's value.
    found = found or base_default(ctx.worktree, ctx.config, ctx.base_branch, site)
    if found is not None and _raised(site, found[1]):
        return _restore_lr(ctx, site, text, *found)
    new = divide_by_ten(site.text)
    if new is None:
        return None
    same = found is not None and number(found[1].text) == number(site.text)
    # Tells a reader why the base's value was not restored (again): it is the one in use.
    note = f" ({found[0]}'s value too)" if found is not None and same else ""
    return FixProposal(
        fixer="rule:lower-lr",
        description=f"lower learning rate {site.text} → {new} in {site.path}",
        root_cause=f"The loss diverged to NaN/inf with {site.key}={site.text}{note}; a 10x smaller step keeps it finite.",
        edits=line_edit(site.path, text, {site.line: site.with_value(new)}),
        evidence=_evidence(ctx, [site]) + (_base_evidence(*found) if found else []),
    )


def _restore_lr(ctx: FixContext, site: Site, text: str, ref: str, base: Site) -> FixProposal:
    """The branch raised the learning rate and the run diverged: the base's value, which did not,
    is the careful fix (a tenth of a raised value may still be far too high)."""
    branch = ref.removeprefix("origin/")
    return FixProposal(
        fixer="rule:lower-lr",
        description=f"restore learning rate {base.text} from {branch} in {site.path} (the branch raised it to {site.text})",
        root_cause=(
            f"The loss diverged to NaN/inf with {site.key}={site.text}, which this branch raised from "
            f"{branch}'s {base.text}; {branch}'s value is restored."
        ),
        edits=line_edit(site.path, text, {site.line: site.with_value(base.text)}),
        evidence=_evidence(ctx, [site]) + _base_evidence(ref, base),
    )


def _raised(site: Site, base: Site) -> bool:
    """Whether the branch's value is higher than the base's (a positive number there)."""
    ours, theirs = number(site.text), number(base.text)
    return ours is not None and theirs is not None and 0 < theirs < ours


def _base_evidence(ref: str, base: Site) -> list[str]:
    return [f"{ref}:{base.path}:{base.line}: {base.line_text.strip()}"]


def divide_by_ten(literal: str) -> str | None:
    """A tenth of a numeric literal, written the same way: 0.1 → 0.01, 3e-4 → 3e-5, 1E-03 → 1E-04."""
    match = re.fullmatch(r"([+]?[\d.]+)([eE])([+-]?)(\d+)", literal)
    if match:
        mantissa, e, sign, digits = match.groups()
        exponent = int(sign + digits) - 1
        written = str(abs(exponent)).zfill(len(digits))
        return f"{mantissa}{e}{'-' if exponent < 0 else sign}{written}"
    try:
        value = Decimal(literal.replace("_", ""))
    except InvalidOperation:
        return None
    tenth = value.scaleb(-1).normalize()
    value_exp, tenth_exp = value.as_tuple().exponent, tenth.as_tuple().exponent
    if not isinstance(value_exp, int) or not isinstance(tenth_exp, int):
        return None  # NaN or Infinity (a letter for exponent): no tenth to write
    # Keep as many decimals as the original had (10.0 → 1.0, not 1.00 or 1), more only if needed.
    places = max(-value_exp, -tenth_exp, 0)
    return f"{tenth:.{places}f}"


def _evidence(ctx: FixContext, sites: list[Site]) -> list[str]:
    lines = [f"{s.path}:{s.line}: {s.line_text.strip()}" for s in sites]
    return list(ctx.diagnosis.evidence[-3:]) + lines
