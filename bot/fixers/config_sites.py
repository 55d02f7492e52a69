"""Where a config key gets its literal value: dict entries, assignments, keyword arguments and
argparse defaults in Python, `key: value` lines in YAML. Used by the hyperparameter rules."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

from bot.fixers.text import char_col, end_of, read_text, repo_files

# How much a kind of site looks like "the config": a dict or YAML beats a call's keyword.
_RANK = {"entry": 3, "yaml": 3, "assign": 3, "argparse": 2, "keyword": 1}
# Folders of someone else's code: a value there is never the experiment's to change.
VENDORED_DIRS = frozenset(
    {
        "site-packages",
        "dist-packages",
        "third_party",
        "third-party",
        "thirdparty",
        "vendor",
        "vendored",
        "_vendor",
        ".venv",
        "venv",
        "node_modules",
    }
)


@dataclass
class Site:
    path: str
    line: int  # 1-based
    col: int  # character offsets of the value within the line
    end_col: int
    text: str  # the value's source text, e.g. "1e-3"
    key: str
    kind: str  # entry | assign | keyword | argparse | yaml
    line_text: str  # the whole line, as in the file
    scope: str = ""  # what holds it: one dict, one call, argparse, module; "" for a YAML file

    def with_value(self, new: str) -> str:
        """The site's line with the value replaced by `new`."""
        return self.line_text[: self.col] + new + self.line_text[self.end_col :]


def find_sites(root: Path, keys: tuple[str, ...]) -> list[Site]:
    """Every literal value of one of `keys` in the repo's Python and YAML files (tests skipped)."""
    sites: list[Site] = []
    for rel in repo_files(root, (".py", ".yaml", ".yml"), skip_tests=True):
        if not is_vendored(rel):
            sites.extend(file_sites(root, rel, keys))
    return sites


def file_sites(root: Path, rel: str, keys: tuple[str, ...]) -> list[Site]:
    """The literal values of `keys` in one Python or YAML file."""
    text = read_text(root, rel)
    return [] if text is None else text_sites(rel, text, keys)


def text_sites(rel: str, text: str, keys: tuple[str, ...]) -> list[Site]:
    """The literal values of `keys` in `text`, a version of the Python or YAML file `rel`."""
    finder = python_sites if rel.endswith(".py") else yaml_sites
    return finder(rel, text, keys)


def is_vendored(rel: str) -> bool:
    return any(part in VENDORED_DIRS for part in rel.split("/")[:-1])


def best_site(sites: list[Site], run_config: dict | None = None, preferred: list[set[str]] | tuple = ()) -> Site | None:
    """The site that holds the value the run used, or None rather than a guess.

    When the run logged one of the sites' keys, only a site whose literal equals the logged
    value will do (the likeliest config among several). When it logged none of them: the only
    candidate, else the only one in the first group of `preferred` paths that has exactly one
    (the traceback's files, then the config files). Vendored code is never a candidate.
    """
    sites = [s for s in sites if not is_vendored(s.path)]
    if not sites:
        return None
    run_config = {k: _unwrap(v) for k, v in (run_config or {}).items()}
    logged = {s.key: values for s in sites if (values := logged_values(run_config, s.key))}
    if logged:
        matching = [s for s in sites if any(_same_number(s.text, v) for v in logged.get(s.key, []))]
        return min(matching, key=_likeliest) if matching else None
    if len(sites) == 1:
        return sites[0]
    for paths in preferred:
        within = [s for s in sites if s.path in paths]
        if len(within) == 1:
            return within[0]
    return None


def _likeliest(site: Site) -> tuple:
    return (-("config" in site.path.lower()), -_RANK[site.kind], site.path, site.line)


def number(text: str) -> int | float | None:
    """The numeric value of a literal (`1e-3`, `256`, `1_000`); None for anything else."""
    try:
        value = ast.literal_eval(text.replace("_", ""))
    except (ValueError, SyntaxError):
        return None
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def python_sites(rel: str, text: str, keys: tuple[str, ...]) -> list[Site]:
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    lines = text.split("\n")
    sites = []
    for key, value, kind, holder in _python_pairs(tree, keys):
        if isinstance(value, ast.Constant) and value.lineno == value.end_lineno:
            site = _site(rel, lines, value, key, kind)
            site.scope = f"{kind}@{holder.lineno}:{holder.col_offset}" if kind in ("entry", "keyword") else kind
            sites.append(site)
    return sites


def _python_pairs(tree: ast.AST, keys: tuple[str, ...]):
    """(key, value node, kind, holder node) for each place a key is given a value."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for k, v in zip(node.keys, node.values, strict=False):
                if isinstance(k, ast.Constant) and k.value in keys:
                    yield k.value, v, "entry", node
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                name = getattr(target, "id", None) or getattr(target, "attr", None)
                if name in keys and node.value is not None:
                    yield name, node.value, "assign", node
        elif isinstance(node, ast.Call):
            yield from _call_pairs(node, keys)


def _call_pairs(node: ast.Call, keys: tuple[str, ...]):
    if getattr(node.func, "attr", None) == "add_argument":
        flags = [a.value for a in node.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        dests = {f.lstrip("-").replace("-", "_") for f in flags}
        default = next((kw.value for kw in node.keywords if kw.arg == "default"), None)
        for key in keys:
            if key in dests and default is not None:
                yield key, default, "argparse", node
        return
    for kw in node.keywords:
        if kw.arg in keys:
            yield kw.arg, kw.value, "keyword", node


def _site(rel: str, lines: list[str], value: ast.expr, key: str, kind: str) -> Site:
    line = lines[value.lineno - 1]
    col, end = char_col(line, value.col_offset), char_col(line, end_of(value)[1])
    return Site(rel, value.lineno, col, end, line[col:end], key, kind, line)


def yaml_sites(rel: str, text: str, keys: tuple[str, ...]) -> list[Site]:
    sites = []
    for number_, line in enumerate(text.split("\n"), 1):
        match = _YAML_ENTRY.match(line)
        if match and match.group("key") in keys:
            sites.append(
                Site(
                    rel,
                    number_,
                    match.start("value"),
                    match.end("value"),
                    match.group("value"),
                    match.group("key"),
                    "yaml",
                    line,
                )
            )
    return sites


# `  key: value  # comment` (a scalar value; quoted keys allowed).
_YAML_ENTRY = re.compile(
    r"""^\s*(?:-\s+)?["']?(?P<key>[\w.-]+)["']?\s*:\s+(?P<value>[^\s#'"{\[][^#]*?|"[^"]*"|'[^']*')\s*(?:#.*)?$"""
)


def logged_values(run_config: dict, key: str) -> list:
    """The values a run logged for `key`: at the top of its config, or in a section of it (a
    config object logged whole: `{"trainer": {"learning_rate": 50.0}}`)."""
    values = []
    for k, v in run_config.items():
        if k == key:
            values.append(v)
        elif isinstance(v, dict):
            values += logged_values(v, key)
    return values


def _unwrap(value):
    # W&B run configs may wrap values: {"lr": {"value": 0.1}}; a section of the config is a plain dict.
    if isinstance(value, dict) and "value" in value and set(value) <= {"value", "desc"}:
        return value["value"]
    return value


def _same_number(text: str, value) -> bool:
    parsed = number(text)
    if isinstance(value, str):  # a value logged as text, e.g. from argparse without a type
        value = number(value.strip())
    return parsed is not None and isinstance(value, (int, float)) and abs(parsed - value) <= 1e-12 * max(1, abs(value))
