"""A config key is missing → add it, with a value some evidence gives, where the repo's config
style declares its keys: a `DEFAULTS = {...}` literal, a YAML file (for a Hydra app, the file the
key's group composes), an argparse `add_argument`, a dataclass field, a module-level global.
No evidence, no guess."""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import yaml

from bot.diagnosis.model import Diagnosis
from bot.fixers.config_evidence import Value, as_python, as_yaml, find_value
from bot.fixers.config_subject import Subject, SubjectKind, config_subject
from bot.fixers.declare import (
    Declaration,
    argparse_declaration,
    dataclass_declaration,
    dataclass_named,
    global_declaration,
)
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.overrides import launch_views
from bot.fixers.text import char_col, end_of, failing_file, line_edit, read_text, repo_files, repo_path
from bot.fixers.value_source import hydra_home

# Names under which code usually holds its configuration.
_CONFIG_NAME = re.compile(r"cfg|conf|config|default|hparam|hyper|param|setting|args|opt", re.I)


@dataclass
class MissingKey:
    path: list[str]  # ["train", "warmup_steps"]: parents, then the key
    omegaconf: bool
    reader: str | None  # the line that read the key, when known
    message: str

    @property
    def key(self) -> str:
        return self.path[-1]


@dataclass
class Target:
    path: str
    score: int
    dict_name: str | None = None  # the Python dict literal to add to; None for YAML
    inner_path: list[str] | None = None  # the key's path inside the file, when not the key's own


def add_config_default(ctx: FixContext) -> FixProposal | None:
    subject = config_subject(ctx.diagnosis)
    if subject is not None and subject.kind in (SubjectKind.ATTRIBUTE, SubjectKind.GLOBAL):
        return _declare(ctx, subject)
    missing = missing_key(ctx)
    if missing is None:
        return None
    targets = sorted(_targets(ctx, missing), key=lambda t: (-t.score, t.path))
    if not targets:
        return None
    target = targets[0].path
    value = find_value(ctx, missing.key, target)
    if value is None:
        return None
    text = read_text(ctx.worktree, target)
    if text is None:  # _targets has just read it; gone or unreadable since
        return None
    if targets[0].dict_name:
        changes = _python_insert(text, targets[0].dict_name, missing, value)
    else:
        inner = targets[0].inner_path or missing.path
        changes = _yaml_insert(text, MissingKey(inner, missing.omegaconf, missing.reader, missing.message), value)
    if not changes:
        return None
    return FixProposal(
        fixer="rule:config-default",
        description=f"add missing config key {missing.key} to {target}",
        root_cause=f"The code reads config key '{'.'.join(missing.path)}', which {target} does not define.",
        edits=line_edit(target, text, changes),
        evidence=[missing.message] + ([missing.reader] if missing.reader else []) + [value.evidence],
    )


# --- which key --------------------------------------------------------------------------------


def missing_key(ctx: FixContext) -> MissingKey | None:
    """The key a KeyError on a config, or an OmegaConf/Hydra error, names."""
    subject = config_subject(ctx.diagnosis)
    if subject is None or subject.kind is not SubjectKind.KEY:
        return None
    if subject.omegaconf:
        return MissingKey(subject.name.split("."), True, None, subject.message)
    reader = _reading_line(ctx, subject.name)
    if reader is None:
        return None
    return MissingKey([subject.name], False, reader, subject.message)


def _reading_line(ctx: FixContext, key: str) -> str | None:
    """The source line where a config-like object is indexed with `key`: the evidence that the
    KeyError is about configuration and not, say, a batch dict."""
    pattern = re.compile(rf"""(\w+)\s*(?:\[\s*['"]{re.escape(key)}['"]\s*\]|\.{re.escape(key)}\b)""")
    for line in _candidate_lines(ctx.diagnosis, ctx):
        found = pattern.search(line)
        if found and _CONFIG_NAME.search(found.group(1)):
            return line.strip()
    return None


def _candidate_lines(diagnosis: Diagnosis, ctx: FixContext) -> list[str]:
    lines = []
    location = diagnosis.location or {}
    rel = repo_path(ctx.worktree, location.get("file"))
    text = read_text(ctx.worktree, rel) if rel else None
    if text and isinstance(location.get("line"), int) and 0 < location["line"] <= text.count("\n") + 1:
        lines.append(text.split("\n")[location["line"] - 1])
    return lines + list(reversed(diagnosis.evidence))


# --- Python config styles: argparse, dataclasses, globals -----------------------------------------


def _declare(ctx: FixContext, subject: Subject) -> FixProposal | None:
    """`args.x` that no `add_argument`/field declares, or a config global that is not defined:
    declare it in the file that declares its siblings, with a value from evidence."""
    declaration = _declaration(ctx, subject)
    if declaration is None:
        return None
    text = read_text(ctx.worktree, declaration.path) or ""
    lines = text.split("\n")
    changes = {declaration.after_line: lines[declaration.after_line - 1] + "\n" + declaration.text}
    return FixProposal(
        fixer="rule:config-default",
        description=f"declare missing config key {subject.name} in {declaration.path}",
        root_cause=(
            f"The code reads {subject.name}, which no {_STYLE_WORDS[declaration.style]} in {declaration.path} declares."
        ),
        edits=line_edit(declaration.path, text, changes),
        evidence=[subject.message, declaration.evidence],
    )


_STYLE_WORDS = {"argparse": "argument of the parser", "dataclass": "field of the config class", "global": "setting"}


Declarer = Callable[[Value], "Declaration | None"]


def _declaration(ctx: FixContext, subject: Subject) -> Declaration | None:
    texts = _python_texts(ctx)
    key = subject.name
    candidates: list[tuple[str, Declarer]]
    if subject.kind is SubjectKind.ATTRIBUTE and subject.holder == "Namespace":
        candidates = [(rel, partial(argparse_declaration, rel, text, key)) for rel, text in texts.items()]
    elif subject.kind is SubjectKind.ATTRIBUTE and subject.holder:
        owner = dataclass_named(texts, subject.holder)
        candidates = (
            [(owner, partial(dataclass_declaration, owner, texts[owner], subject.holder, key))] if owner else []
        )
    else:
        reader = failing_file(ctx)
        candidates = [(reader, partial(global_declaration, reader, texts[reader], key))] if reader in texts else []
    for rel, declare in candidates:
        # The first file whose style can declare the key is the place; then the value decides.
        if declare(_PLACEHOLDER) is None:
            continue
        value = find_value(ctx, key, rel)
        return declare(value) if value is not None else None
    return None


_PLACEHOLDER = Value(0, "0", "python", "")


def _python_texts(ctx: FixContext) -> dict[str, str]:
    """The repo's Python files, the failing file and the launched scripts first."""
    first = [failing_file(ctx)] + [v.invocation.script for v in launch_views(ctx.worktree, ctx.config)]
    order = [f for f in dict.fromkeys(first) if f] + list(repo_files(ctx.worktree, (".py",), skip_tests=True))
    texts = {}
    for rel in dict.fromkeys(order):
        text = read_text(ctx.worktree, rel)
        if text:
            texts[rel] = text
    return texts


# --- where the config lives -------------------------------------------------------------------


def _targets(ctx: FixContext, missing: MissingKey) -> list[Target]:
    home = hydra_home(ctx.worktree, ctx.config, missing.path) if missing.omegaconf else None
    if home is not None:  # Hydra composes the config: the key's group file, else the primary one
        path, inner = home
        return [Target(path, 1000, inner_path=inner)]
    reader_file = failing_file(ctx)
    reader_text = read_text(ctx.worktree, reader_file) if reader_file else ""
    targets = []
    for rel in repo_files(ctx.worktree, (".py", ".yaml", ".yml"), skip_tests=True):
        text = read_text(ctx.worktree, rel)
        if not text:
            continue
        if rel.endswith(".py"):
            targets += _python_targets(rel, text, missing, reader_file, reader_text or "")
        elif (score := _yaml_score(rel, text, missing)) > 0:
            targets.append(Target(rel, score))
    return targets


def _python_targets(
    rel: str, text: str, missing: MissingKey, reader_file: str | None, reader_text: str
) -> list[Target]:
    """The file's config-like dict literals that lack the key, scored by how surely the failing
    code reads them: named on the failing line, in the failing file, imported by it."""
    targets = []
    for name, node in _config_dicts(text):
        mapping = _nested(node, missing.path[:-1])
        if mapping is None or _has_key(mapping, missing.key):
            continue
        score = 5 * ("config" in rel.lower()) + 10 * bool(_CONFIG_NAME.search(name))
        if missing.reader and re.search(rf"\b{re.escape(name)}\b", missing.reader):
            score += 100
        if rel == reader_file:
            score += 50
        elif re.search(rf"^\s*(from|import)\s+[\w.]*\b{re.escape(rel[:-3].split('/')[-1])}\b", reader_text, re.M):
            score += 40
        if score >= 10:
            targets.append(Target(rel, score, name))
    return targets


def _config_dicts(text: str) -> list[tuple[str, ast.Dict]]:
    """Module-level `NAME = {"key": ...}` literals."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    found = []
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        if isinstance(value, ast.Dict) and value.keys and isinstance(targets[0], ast.Name):
            found.append((targets[0].id, value))
    return found


def _nested(node: ast.Dict, parents: list[str]) -> ast.Dict | None:
    for parent in parents:
        child = next(
            (
                v
                for k, v in zip(node.keys, node.values, strict=False)
                if isinstance(k, ast.Constant) and k.value == parent and isinstance(v, ast.Dict)
            ),
            None,
        )
        if child is None:
            return None
        node = child
    return node


def _has_key(node: ast.Dict, key: str) -> bool:
    return any(isinstance(k, ast.Constant) and k.value == key for k in node.keys)


def _yaml_score(rel: str, text: str, missing: MissingKey) -> int:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return 0
    for parent in missing.path[:-1]:
        data = data.get(parent) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not data or data.get(missing.key, "???") != "???":
        return 0
    return 20 + 10 * ("config" in rel.lower()) + 40 * missing.omegaconf


# --- the edit ---------------------------------------------------------------------------------


def _python_insert(text: str, dict_name: str, missing: MissingKey, value: Value) -> dict[int, str]:
    """One entry added after the dict's last one, in its indentation and quote style."""
    node = next((_nested(n, missing.path[:-1]) for name, n in _config_dicts(text) if name == dict_name), None)
    if node is None:
        return {}
    lines = text.split("\n")
    last_key, last_value = node.keys[-1], node.values[-1]
    quote = _quote_style(lines, node)
    entry = f"{quote}{missing.key}{quote}: {as_python(value, quote)}"
    line_no, end_byte = end_of(last_value)
    line = lines[line_no - 1]
    end = char_col(line, end_byte)
    comma = re.match(r"\s*,", line[end:])
    if node.end_lineno == line_no:  # `{...}` closes on this line: insert inline
        at = end + comma.end() if comma else end
        insert = f" {entry}," if comma else f", {entry}"
        return {line_no: line[:at] + insert + line[at:]}
    head = line if comma else line[:end] + "," + line[end:]
    return {line_no: head + "\n" + _indent(lines, last_key or last_value) + entry + ("," if comma else "")}


def _quote_style(lines: list[str], node: ast.Dict) -> str:
    for key in node.keys:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            line = lines[key.lineno - 1]
            return line[char_col(line, key.col_offset)]
    return '"'


def _indent(lines: list[str], node: ast.expr) -> str:
    line = lines[node.lineno - 1]
    col = char_col(line, node.col_offset)
    before = line[:col]
    return before if not before.strip() else _leading_space(line)


def _yaml_insert(text: str, missing: MissingKey, value: Value) -> dict[int, str]:
    """Fill a `key: ???` placeholder, or add `key: value` after the mapping's last line."""
    lines = text.split("\n")
    start, end, indent = _yaml_block(lines, missing.path[:-1])
    if start is None:
        return {}
    rendered = as_yaml(value)
    for number in range(start, end):
        found = re.match(rf"^(\s*){re.escape(missing.key)}:\s*\?\?\?", lines[number])
        if found and len(found.group(1)) == len(indent):
            return {number + 1: lines[number].replace("???", rendered, 1)}
    last = max(
        (n for n in range(start, end) if lines[n].strip() and not lines[n].lstrip().startswith("#")), default=None
    )
    if last is None:
        return {}
    return {last + 1: lines[last] + "\n" + f"{indent}{missing.key}: {rendered}"}


def _yaml_block(lines: list[str], parents: list[str]) -> tuple[int | None, int, str]:
    """(first line, end, children's indentation) of the mapping at `parents` (0-based lines)."""
    start, end, indent = 0, len(lines), ""
    for parent in parents:
        header = next(
            (n for n in range(start, end) if re.match(rf"^{indent}{re.escape(parent)}:\s*(#.*)?$", lines[n])), None
        )
        if header is None:
            return None, 0, ""
        body = header + 1
        stop = next(
            (
                n
                for n in range(body, end)
                if lines[n].strip() and not lines[n].startswith(indent + " ") and not lines[n].lstrip().startswith("#")
            ),
            end,
        )
        child = next((lines[n] for n in range(body, stop) if lines[n].strip()), None)
        if child is None:
            return None, 0, ""
        start, end, indent = body, stop, _leading_space(child)
    return start, end, indent


def _leading_space(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]
