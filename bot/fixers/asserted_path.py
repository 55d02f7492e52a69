"""A bare `assert os.path.exists(root)` names no path: find it. The assertion's variable got its
value from the call the repo's code made (`create_dataset(root=args.data_dir, …)`), so the
config keys that call reads are the candidates, and the one whose value in effect (a flag, the
config file the launch names, the declared default) is a path that does not exist is the path.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bot.diagnosis.tracebacks import parse_tracebacks
from bot.fixers.config_sites import Site, find_sites
from bot.fixers.model import FixContext
from bot.fixers.text import read_text, repo_path
from bot.fixers.value_source import sites_in_effect

_EXISTS = re.compile(r"\bassert\s+(?:not\s+)?(?:os\.path\.(?:exists|isdir|isfile)|Path)\((?P<var>[\w.]+)\)")
_CONFIG_READ = re.compile(r"\b(?:args|cfg|config|conf|opt|opts|hparams|params|settings)\.(\w+)")


def asserted_path_site(ctx: FixContext) -> tuple[Site, str] | None:
    """(the site of the missing path's value, the assertion) for a bare existence assertion."""
    exc = ctx.diagnosis.exception or {}
    if not (exc.get("type") or "").endswith("AssertionError") or (exc.get("message") or "").strip():
        return None
    frames = [f for tb in parse_tracebacks(ctx.log_tail) if tb.exc_type for f in tb.frames]
    if not frames or not _EXISTS.search(frames[-1][3]):
        return None
    assertion = frames[-1][3].strip()
    keys: list[str] = []
    for file, line, _func, _code in reversed(frames):
        rel = repo_path(ctx.worktree, file)
        if rel and "site-packages" not in file:
            keys += _config_reads(read_text(ctx.worktree, rel) or "", line)
    missing = [s for s in _values(ctx, tuple(dict.fromkeys(keys))) if not _exists(ctx.worktree, s.text)]
    return (missing[0], f"AssertionError: {assertion}") if len(missing) == 1 else None


def _config_reads(text: str, line: int) -> list[str]:
    """The config attributes (`args.data_dir`) the statement at `line` reads."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return []
    statements = [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.stmt)
        and not isinstance(
            n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.If, ast.For, ast.While, ast.With, ast.Try)
        )
        and n.lineno <= line <= (n.end_lineno or n.lineno)
    ]
    if not statements:
        return []
    source = ast.get_source_segment(text, statements[-1]) or ""
    return _CONFIG_READ.findall(source)


def _values(ctx: FixContext, keys: tuple[str, ...]) -> list[Site]:
    """Each key's value in effect: what the launch sets, else the one declared default."""
    sites = []
    for key in keys:
        effect = [s for s in sites_in_effect(ctx.worktree, ctx.config, (key,)) if _pathlike(s.text)]
        declared = [s for s in find_sites(ctx.worktree, (key,)) if _pathlike(s.text)]
        chosen = effect[:1] or (declared if len(declared) == 1 else [])
        sites += chosen
    return sites


def _pathlike(text: str) -> bool:
    value = text.strip("'\"")
    return bool(value) and "/" in value or value.endswith((".txt", ".csv", ".json", ".jsonl", ".parquet"))


def _exists(root: Path, text: str) -> bool:
    value = text.strip("'\"")
    return (Path(value) if value.startswith("/") else Path(root) / value).exists()
