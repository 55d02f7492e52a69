"""An override names a key the config does not have → rename it to the closest existing key,
where the override is written, when exactly one existing key is that close — or, when none is,
to the one existing key it abbreviates or is the abbreviation of (`--lr` ↔ `--learning-rate`,
see `bot.fixers.abbreviations`):

- a flag argparse or tyro refuses (`--batch_size` → `--batch-size`), or a `--key=value` a
  nanoGPT-style configurator refuses, in a launch script;
- a Hydra override of a key its config lacks (`data.batchsize=32` → `data.batch_size=32`);
- a Hydra group option that does not exist (`override /callbacks: defualt` → `default`);
- a YAML key the instantiated class refuses (`batchsize: 64` → `batch_size: 64`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import yaml

from bot.fixers.abbreviations import Declared, abbreviation, described
from bot.fixers.config_subject import SubjectKind, config_subject
from bot.fixers.declarations import arguments, attribute_section, built_keys, config_globals, dataclasses
from bot.fixers.invocations import Word
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.overrides import LaunchView, launch_views
from bot.fixers.patch import may_edit
from bot.fixers.text import line_edit, read_text, repo_files
from bot.fixers.value_source import config_files_used, hydra_home

CUTOFF = 0.75


class Meant(Enum):
    """How the existing key was told from the unknown one; the value says so in the report."""

    SPELLING = "the existing key closest to it"
    INITIALS = "the one existing key that is its abbreviation or long form (word initials)"
    DESCRIBED = "the one existing key whose description names it in words"


@dataclass
class Rename:
    path: str
    line: int
    col: int
    end_col: int
    old: str
    new: str
    line_text: str
    meant: Meant


def rename_unknown_key(ctx: FixContext) -> FixProposal | None:
    rename = _rename(ctx)
    if rename is None or not may_edit(rename.path, ctx.config):
        return None
    text = read_text(ctx.worktree, rename.path)
    if text is None:
        return None
    new_line = rename.line_text[: rename.col] + rename.new + rename.line_text[rename.end_col :]
    return FixProposal(
        fixer="rule:rename-key",
        description=f"rename unknown {rename.old} to {rename.new} in {rename.path}",
        root_cause=f"The config has no {rename.old}; {rename.new} is {rename.meant.value}.",
        edits=line_edit(rename.path, text, {rename.line: new_line}),
        evidence=list(ctx.diagnosis.evidence[-2:]) + [f"{rename.path}:{rename.line}: {rename.line_text.strip()}"],
    )


def _rename(ctx: FixContext) -> Rename | None:
    subject = config_subject(ctx.diagnosis)
    if subject is None or subject.kind is not SubjectKind.UNKNOWN:
        return None
    name = subject.name
    views = launch_views(ctx.worktree, ctx.config)
    if "/" in name:
        return _group_option(ctx, views, name)
    if name.startswith("-"):
        return _flag(ctx, views, name)
    # A bare key may be written as a `--key=value` flag, a Hydra override, or a key of a config
    # file the launch uses (a keyword the class it configures refuses).
    return (
        _flag(ctx, views, name)
        or _attribute_flag(ctx, views, name)
        or _hydra_override(ctx, views, name)
        or _yaml_key(ctx, name)
    )


# --- flags --------------------------------------------------------------------------------------


def _flag(ctx: FixContext, views: list[LaunchView], name: str) -> Rename | None:
    """A flag the script's parser refuses, renamed to the closest flag it declares (or the one
    it abbreviates, or abbreviates it)."""
    for view in views:
        for override in view.overrides:
            written = override.flag.text.split("=", 1)[0]
            if written != name and written.lstrip("-") != name:
                continue
            known = _declared_flags(ctx.worktree, view.invocation.script)
            prefix = written[: len(written) - len(written.lstrip("-"))]
            found = _meant(written, known, override.site.text if override.site else None, normalise=True)
            if found is None:
                continue
            new, meant = found
            new = new if new.startswith("-") else prefix + new
            return _in_word(override.flag, written, new, meant)
    return None


def _declared_flags(root: Path, script: str) -> dict[str, Declared]:
    """The `--flags` a script declares, each with what its declaration says of it."""
    text = read_text(root, script) or ""
    lines = text.split("\n")
    flags: dict[str, Declared] = {}
    for a in arguments(text):
        for option in a.options:
            if option.startswith("--"):
                flags.setdefault(option, Declared(a.help, a.kind))
    for cls in dataclasses(text):  # tyro: `--field-name`, also accepted as `--field_name`
        for f in cls.fields:
            doc = "\n".join(lines[f.line : f.end_line]) + _comment(lines[f.line - 1])
            kind = f.annotation if f.annotation in ("int", "float", "str", "bool") else None
            flags.setdefault(f"--{f.name.replace('_', '-')}", Declared(doc, kind))
    for g in config_globals(text):
        flags.setdefault(f"--{g.name}", Declared(_comment(lines[g.line - 1]), g.kind))
    return flags


def _attribute_flag(ctx: FixContext, views: list[LaunchView], name: str) -> Rename | None:
    """`--section.key=value` that a config object refuses (minGPT's CfgNode), renamed to the
    closest key of that section: one the script sets, or one the section's defaults set."""
    section, _, leaf = name.lstrip("-").rpartition(".")
    if not section:
        return None
    for view in views:
        for override in view.overrides:
            written = override.flag.text.split("=", 1)[0]
            if written.lstrip("-") != name.lstrip("-"):
                continue
            found = _meant(leaf, _section_keys(ctx.worktree, view.invocation.script, section.split(".")))
            if found is None:
                continue
            new, meant = found
            return _in_word(override.flag, written, written[: len(written) - len(leaf)] + new, meant)
    return None


def _section_keys(root: Path, script: str, section: list[str]) -> list[str]:
    """The keys of one section of the script's config object, its defaults' among them (the
    class that builds them may be in any module of the repo)."""
    found = attribute_section(read_text(root, script) or "", section)
    keys = list(found.keys)
    if not found.builders:
        return keys
    for rel in repo_files(root, (".py",), skip_tests=True):
        text = read_text(root, rel) or ""
        for builder in found.builders:
            if f"class {builder[0]}" in text:
                keys += [k for k in built_keys(text, builder) if k not in keys]
    return keys


def _comment(line: str) -> str:
    return line.split("#", 1)[1] if "#" in line else ""


# --- Hydra --------------------------------------------------------------------------------------


def _hydra_override(ctx: FixContext, views: list[LaunchView], name: str) -> Rename | None:
    """`group.key=value` for a key the composed config lacks, renamed to its closest sibling."""
    for view in views:
        override = next((o for o in view.overrides if o.style == "hydra" and o.key == name), None)
        if override is None:
            continue
        path = name.split(".")
        siblings = _yaml_siblings(ctx, path)
        found = _meant(path[-1], siblings)
        if found is None:
            continue
        new, meant = found
        written = override.flag.text.split("=", 1)[0]
        return _in_word(override.flag, written, written[: len(written) - len(path[-1])] + new, meant)
    return None


def _yaml_siblings(ctx: FixContext, path: list[str]) -> list[str]:
    home = hydra_home(ctx.worktree, ctx.config, path)
    if home is None:
        return []
    rel, inner = home
    node: object = _load(ctx.worktree, rel)
    for parent in inner[:-1]:
        node = node.get(parent) if isinstance(node, dict) else None
    return [k for k in node if isinstance(k, str)] if isinstance(node, dict) else []


def _group_option(ctx: FixContext, views: list[LaunchView], name: str) -> Rename | None:
    """`override /group: option` (or `group=option`) for an option file that does not exist."""
    group, _, option = name.rpartition("/")
    for view in views:
        if view.hydra_dir is None:
            continue
        folder = ctx.worktree / view.hydra_dir / group
        options = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
        new = closest(option, options)
        if new is None:
            continue
        for word in view.invocation.args:
            if word.text == f"{group}={option}":
                return _in_word(word, word.text, f"{group}={new}", Meant.SPELLING)
        for rel in config_files_used(ctx.worktree, ctx.config) + _experiment_files(ctx, view):
            found = _defaults_entry(ctx.worktree, rel, group, option, new)
            if found:
                return found
    return None


def _experiment_files(ctx: FixContext, view: LaunchView) -> list[str]:
    return [f for f in view.config_files if (ctx.worktree / f).is_file()]


def _defaults_entry(root: Path, rel: str, group: str, option: str, new: str) -> Rename | None:
    pattern = re.compile(
        rf"^\s*-\s*(?:override\s+)?/?{re.escape(group)}\s*:\s*(?P<option>{re.escape(option)})\s*(?:#.*)?$"
    )
    for number, line in enumerate((read_text(root, rel) or "").split("\n"), 1):
        found = pattern.match(line)
        if found:
            return Rename(rel, number, found.start("option"), found.end("option"), option, new, line, Meant.SPELLING)
    return None


def _yaml_key(ctx: FixContext, keyword: str) -> Rename | None:
    """A key of a composed YAML file that the class it configures refuses, renamed to the
    closest key the same section has in the repo's other configs of that group."""
    for rel in reversed(config_files_used(ctx.worktree, ctx.config)):
        lines = (read_text(ctx.worktree, rel) or "").split("\n")
        for number, line in enumerate(lines, 1):
            found = re.match(rf"^(\s*){re.escape(keyword)}(\s*):", line)
            if not found:
                continue
            known = _known_siblings(ctx, rel, lines, number)
            meant = _meant(keyword, known)
            if meant is not None:
                col = len(found.group(1))
                return Rename(rel, number, col, col + len(keyword), keyword, meant[0], line, meant[1])
    return None


def _known_siblings(ctx: FixContext, rel: str, lines: list[str], number: int) -> list[str]:
    """The keys the section holding line `number` has in the other composed files."""
    parents = _parents(lines, number)
    keys: list[str] = []
    for other in config_files_used(ctx.worktree, ctx.config):
        if other == rel or not parents:
            continue
        # A group's option file holds its package's keys at the top: `configs/data/x.yaml` is `data`.
        group_file = other.split("/")[-2:-1] == parents[:1]
        inner: object = _load(ctx.worktree, other)
        for parent in parents[1:] if group_file else parents:
            inner = inner.get(parent) if isinstance(inner, dict) else None
        if isinstance(inner, dict):
            keys += [k for k in inner if isinstance(k, str)]
    return list(dict.fromkeys(keys))


def _parents(lines: list[str], number: int) -> list[str]:
    """The YAML mapping keys above line `number` (1-based), outermost first, by indentation."""
    indent = len(lines[number - 1]) - len(lines[number - 1].lstrip())
    parents: list[str] = []
    for line in reversed(lines[: number - 1]):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        own = len(line) - len(line.lstrip())
        found = re.match(r"^\s*([\w.-]+)\s*:\s*(?:#.*)?$", line)
        if own < indent and found:
            parents.insert(0, found.group(1))
            indent = own
        if own == 0 and found:
            break
    return parents


def _load(root: Path, rel: str) -> dict:
    try:
        data = yaml.safe_load(read_text(root, rel) or "")
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


# --- shared -------------------------------------------------------------------------------------


def closest(name: str, known: list[str], *, normalise: bool = False) -> str | None:
    """The one existing name close to `name`: equal once dashes and underscores are ignored
    (with `normalise`), else the only one above CUTOFF, or one clearly closer than the rest."""
    known = [k for k in known if k != name]
    if normalise:
        plain = _plain(name)
        same = [k for k in known if _plain(k) == plain]
        if len(same) == 1:
            return same[0]
    scored = sorted(((difflib.SequenceMatcher(None, _plain(name), _plain(k)).ratio(), k) for k in known), reverse=True)
    scored = [(score, k) for score, k in scored if score >= CUTOFF]
    if not scored:
        return None
    if len(scored) == 1 or scored[0][0] - scored[1][0] >= 0.1:
        return scored[0][1]
    return None


def _plain(name: str) -> str:
    return name.lstrip("-+~").replace("-", "").replace("_", "").lower()


def _in_word(word: Word, old: str, new: str, meant: Meant) -> Rename | None:
    """Replace `old` at the start of the word as written (after an opening quote, if any)."""
    written = word.line_text[word.col : word.end_col]
    start = written.find(old)
    if start < 0:
        return None
    col = word.col + start
    return Rename(word.path, word.line, col, col + len(old), old, new, word.line_text, meant)


def _meant(
    name: str, known: dict[str, Declared] | list[str], value: str | None = None, *, normalise: bool = False
) -> tuple[str, Meant] | None:
    """The key `name` stands for, and how it was told: a close spelling first, then word
    initials, then the one declaration whose description names it."""
    close = closest(name, list(known), normalise=normalise)
    if close is not None:
        return close, Meant.SPELLING
    short = abbreviation(name, known, value)
    if short is not None:
        return short, Meant.INITIALS
    named = described(name, known, value)
    return (named, Meant.DESCRIBED) if named is not None else None
