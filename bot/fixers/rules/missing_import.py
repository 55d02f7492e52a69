"""A module the code uses but never imports (`NameError: name 'math' is not defined` where the
line reads `math.sqrt(x)`) → `import math` after the failing file's imports.

Only for a name that is a module wherever the job runs: the standard library's, one a known
distribution provides, the repo's own, or one the repo already depends on (its dependency file
declares it, or another of its files imports it: `scipy.special.expit` where only utils.py
imports scipy). An alias (`np`, `F`) is not a module name: it is left alone, as the import it
stands for cannot be told from the name.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from bot.fixers.dependencies import declared, dependency_file
from bot.fixers.distributions import canonical, distribution_for, is_stdlib
from bot.fixers.imports import repo_defines
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import may_edit
from bot.fixers.text import failing_file, failure_texts, line_edit, read_text, repo_files

_NAME_ERROR = re.compile(r"NameError: name '(\w+)' is not defined")


def add_missing_import(ctx: FixContext) -> FixProposal | None:
    rel = failing_file(ctx)
    text = read_text(ctx.worktree, rel) if rel else None
    if rel is None or text is None or not may_edit(rel, ctx.config):
        return None
    lines = text.split("\n")
    failing_line = (ctx.diagnosis.location or {}).get("line") or 0
    code = lines[failing_line - 1] if 0 < failing_line <= len(lines) else ""
    name, line = _undefined_module(ctx, code)
    after = _last_import_line(text)
    if name is None or after is None:
        return None
    return FixProposal(
        fixer="rule:add-import",
        description=f"import {name} in {rel}",
        root_cause=f"{rel} uses the module {name} but never imports it.",
        edits=line_edit(rel, text, {after: f"{lines[after - 1]}\nimport {name}"}),
        evidence=[line, f"{rel}:{after}: {lines[after - 1].strip()}"],
    )


def _undefined_module(ctx: FixContext, code: str) -> tuple[str | None, str]:
    """The name a NameError names, when the failing line (`code`) uses it as a module that exists."""
    for text in failure_texts(ctx.diagnosis):
        found = _NAME_ERROR.search(text)
        if found is None:
            continue
        name = found.group(1)
        known = (
            is_stdlib(name)
            or distribution_for(name, guess=False)
            or repo_defines(ctx.worktree, name)
            or _repo_depends_on(ctx, name)
        )
        used_as_module = re.search(rf"(?<![\w.]){name}\.\w", code)
        return (name, text.strip()) if known and used_as_module is not None else (None, "")
    return None, ""


def _repo_depends_on(ctx: FixContext, name: str) -> bool:
    """Whether the repo's dependency file declares `name`, or one of its Python files imports it."""
    path = dependency_file(ctx.worktree, ctx.config)
    if canonical(name) in declared(path, read_text(ctx.worktree, path)):
        return True
    imports = re.compile(rf"^[ \t]*(?:import|from)[ \t]+{re.escape(name)}\b", re.MULTILINE)
    return any(imports.search(_text(ctx.worktree, rel)) for rel in repo_files(ctx.worktree, (".py",)))


def _text(root: Path, rel: str) -> str:
    return read_text(root, rel) or ""


def _last_import_line(text: str) -> int | None:
    """The last line of the module-level imports before the first definition; None when the
    file does not parse or imports nothing at module level."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return None
    last = None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            break
        if isinstance(node, ast.Import | ast.ImportFrom):
            last = node.end_lineno
    return last
