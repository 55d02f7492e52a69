"""Where a missing config key's value can be read rather than guessed, in order of trust:
the base branch's version of the config, another config file of the repo, the branch doc,
PR text or hint, and the configs of earlier runs."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from typing import Any

import yaml

from bot.fixers.base_value import base_texts
from bot.fixers.config_sites import Site, find_sites, python_sites, yaml_sites
from bot.fixers.model import FixContext
from bot.fixers.text import read_text
from bot.repo.branch_doc import doc_candidates

_EVIDENCE_KINDS = ("entry", "assign", "argparse", "yaml")
_VALUE = (
    r"""[-+]?(?:\d[\d_]*(?:\.\d+)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?)"""
    r"""|true|false|True|False|"[^"\n]*"|'[^'\n]*'"""
)


@dataclass
class Value:
    obj: Any
    text: str | None  # as written where it was found, to be reused when the syntax allows
    kind: str  # python | yaml | text | run
    evidence: str


def find_value(ctx: FixContext, key: str, target: str) -> Value | None:
    """The first value of `key` that some evidence gives; None when nothing does."""
    for source in (_from_base_branch, _from_other_configs, _from_docs, _from_run_configs):
        value = source(ctx, key, target)
        if value is not None:
            return value
    return None


def _from_base_branch(ctx: FixContext, key: str, target: str) -> Value | None:
    finder = python_sites if target.endswith(".py") else yaml_sites
    for ref, text in base_texts(ctx.worktree, ctx.base_branch, target):
        site = next((s for s in finder(target, text, (key,)) if s.kind in _EVIDENCE_KINDS), None)
        if site is not None:
            return _site_value(site, f"{ref}:{target}:{site.line}: {site.line_text.strip()}")
    return None


def _from_other_configs(ctx: FixContext, key: str, target: str) -> Value | None:
    for site in find_sites(ctx.worktree, (key,)):
        if site.path != target and site.kind in _EVIDENCE_KINDS and site.text.strip() != "???":
            return _site_value(site, f"{site.path}:{site.line}: {site.line_text.strip()}")
    return None


def _site_value(site: Site, evidence: str) -> Value | None:
    kind = "yaml" if site.kind == "yaml" else "python"
    obj = _parse(site.text, kind)
    return None if obj is _UNREADABLE else Value(obj, site.text, kind, evidence)


def _from_docs(ctx: FixContext, key: str, target: str) -> Value | None:
    texts = [(rel, read_text(ctx.worktree, rel)) for rel in doc_candidates(ctx.branch)]
    texts += [("PR description", ctx.pr_text), ("hint", ctx.hint)]
    names = "|".join(re.escape(name) for name in dict.fromkeys((key, key.replace("_", "-"))))
    # `warmup_steps = 10`, `--warmup-steps 10`, "warmup_steps of 10"; a code span may hold any
    # scalar: `matmul_precision: medium`.
    patterns = (
        (re.compile(rf"`(?:--)?(?:{names})\s*(?:=|:|\s)\s*([^`\s]+)\s*`"), "text"),
        (
            re.compile(
                rf"`?(?<![\w-])(?:(?:{names})\b`?\s*(?:=|:|\bof\b|\bto\b|\bis\b)|--(?:{names})\s)\s*`?({_VALUE})(?!\w|\.\d)"
            ),
            "text",
        ),
    )
    for where, text in texts:
        for line in (text or "").splitlines():
            for pattern, kind in patterns:
                match = pattern.search(line)
                if match:
                    obj = _parse(match.group(1), kind)
                    if obj is not _UNREADABLE:
                        return Value(obj, match.group(1), kind, f"{where}: {line.strip()}")
    return None


def _from_run_configs(ctx: FixContext, key: str, target: str) -> Value | None:
    for number, config in enumerate(ctx.earlier_run_configs, 1):
        value = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, dict) and set(value) <= {"value", "desc"}:
            value = value.get("value")  # W&B's {"value": ..., "desc": ...} wrapping
        if value is not None:
            return Value(value, None, "run", f"earlier run config #{number}: {key}={value!r}")
    return None


_UNREADABLE = object()


def _parse(text: str, kind: str) -> Any:
    """The value a literal stands for. Numbers are numbers in every syntax (PyYAML would read
    `1e-4` as a string; OmegaConf and people read it as a number)."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        pass
    if kind == "python":
        return _UNREADABLE
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return _UNREADABLE


def as_python(value: Value, quote: str = '"') -> str:
    """The value written as a Python literal, reusing its original spelling where valid."""
    if value.text is not None and _literal_equals(value.text, value.obj):
        if not isinstance(value.obj, str):
            return value.text
    if isinstance(value.obj, str) and quote not in value.obj and "\\" not in value.obj:
        return f"{quote}{value.obj}{quote}"
    return repr(value.obj)


def as_yaml(value: Value) -> str:
    """The value written as a YAML scalar, reusing its original spelling where valid."""
    if value.text is not None and value.kind in ("yaml", "text") and not isinstance(value.obj, str):
        return value.text if value.text not in ("True", "False", "None") else _dump(value.obj)
    if isinstance(value.obj, str) and _plain_yaml(value.obj):
        return value.obj
    if value.text is not None and isinstance(value.obj, (int, float)) and not isinstance(value.obj, bool):
        return value.text
    return _dump(value.obj)


def _literal_equals(text: str, obj: Any) -> bool:
    try:
        return ast.literal_eval(text) == obj
    except (ValueError, SyntaxError):
        return False


def _plain_yaml(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text and text.strip() == text and text != ""
    except yaml.YAMLError:
        return False


def _dump(obj: Any) -> str:
    return yaml.safe_dump(obj, default_flow_style=True).strip().removesuffix("...").strip()
