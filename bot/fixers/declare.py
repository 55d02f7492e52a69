"""Add a missing key where the repo's Python config style declares it, written like its
neighbours: an `add_argument` with a default, a dataclass field, a module-level global.

The new declaration goes after the most related existing one (the one sharing most words of
the name: `ent_coef_final` beside `ent_coef`), else after the last one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.fixers.config_evidence import Value, as_python
from bot.fixers.declarations import Argument, arguments, config_globals, dataclasses


@dataclass
class Declaration:
    """Where to add a key and the line(s) to add after `after_line` (1-based)."""

    path: str
    after_line: int
    text: str
    style: str  # argparse | dataclass | global
    evidence: str = ""  # where the value came from


def argparse_declaration(rel: str, text: str, key: str, value: Value) -> Declaration | None:
    """`parser.add_argument('--key', type=T, default=V)` after the most related argument."""
    found = [a for a in arguments(text) if not _config_file_parser(a, text)]
    if not found or any(a.dest == key for a in found):
        return None
    anchor = _related(found, key, lambda a: a.dest)
    lines = text.split("\n")
    first = lines[anchor.line - 1]
    indent = first[: len(first) - len(first.lstrip())]
    quote = _quote(first)
    option = "--" + (key.replace("_", "-") if _kebab(found) else key)
    kind = _argparse_kind(value.obj, quote)
    if kind is None:
        return None
    call = f"{indent}{anchor.holder}.add_argument({quote}{option}{quote}, {kind}default={as_python(value, quote)})"
    return Declaration(rel, anchor.end_line, call, "argparse", value.evidence)


def dataclass_declaration(rel: str, text: str, class_name: str, key: str, value: Value) -> Declaration | None:
    """`key: T = V` in the dataclass `class_name`, after its most related field."""
    cls = next((c for c in dataclasses(text) if c.name == class_name), None)
    if cls is None or not cls.fields or any(f.name == key for f in cls.fields):
        return None
    anchor = _related(cls.fields, key, lambda f: f.name)
    annotation = _annotation(value.obj)
    if annotation is None:
        return None
    quote = _quote(text.split("\n")[anchor.line - 1])
    line = f"{cls.indent}{key}: {annotation} = {as_python(value, quote)}"
    return Declaration(rel, anchor.end_line, line, "dataclass", value.evidence)


def global_declaration(rel: str, text: str, key: str, value: Value) -> Declaration | None:
    """`key = V` among a module's config globals (nanoGPT style), after the most related one."""
    found = config_globals(text)
    if not found or any(g.name == key for g in found):
        return None
    anchor = _related(found, key, lambda g: g.name)
    quote = _quote(text.split("\n")[anchor.line - 1])
    return Declaration(rel, anchor.end_line, f"{key} = {as_python(value, quote)}", "global", value.evidence)


def dataclass_named(texts: dict[str, str], class_name: str) -> str | None:
    """The file among `texts` that defines the dataclass `class_name`, when exactly one does."""
    owners = [rel for rel, text in texts.items() if any(c.name == class_name for c in dataclasses(text))]
    return owners[0] if len(owners) == 1 else None


def _config_file_parser(arg: Argument, text: str) -> bool:
    """timm's first parser reads only `-c/--config`: never the place for a hyperparameter."""
    holders = [a for a in arguments(text) if a.holder == arg.holder]
    return len(holders) == 1 and arg.dest in ("config", "config_file", "cfg")


def _related(items: Sequence[Any], key: str, name_of) -> Any:
    words = set(key.split("_"))
    best = max(range(len(items)), key=lambda i: (len(words & set(name_of(items[i]).split("_"))), i))
    shared = words & set(name_of(items[best]).split("_"))
    return items[best] if any(len(w) >= 3 for w in shared) else items[-1]


def _kebab(found: list[Argument]) -> bool:
    """Whether the parser writes multi-word options with dashes (`--n-layer`) rather than `--n_layer`."""
    long = [o for a in found for o in a.options if o.startswith("--") and ("-" in o[2:] or "_" in o[2:])]
    return not long or sum("-" in o[2:] for o in long) >= sum("_" in o[2:] for o in long)


def _argparse_kind(obj: Any, quote: str) -> str | None:
    if isinstance(obj, bool):  # a flag that is off unless given; one on by default has no plain spelling
        return f"action={quote}store_true{quote}, " if obj is False else None
    for kind in (int, float, str):
        if isinstance(obj, kind):
            return f"type={kind.__name__}, "
    return None


def _annotation(obj: Any) -> str | None:
    for kind in (bool, int, float, str):
        if isinstance(obj, kind):
            return kind.__name__
    return None


def _quote(line: str) -> str:
    found = re.search(r"""['"]""", line)
    return found.group(0) if found else '"'
