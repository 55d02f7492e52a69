"""An import of the repo's own code names a module or name that does not exist → the closest one
that does (`src.modles` → `src.models`, `Nett` → `Net`)."""

from __future__ import annotations

import ast
import difflib
import re
from pathlib import Path

from bot.fixers.distributions import distribution_for
from bot.fixers.imports import CUTOFF, MissingImport, defined_names, local_package_dir, missing_import, modules_in
from bot.fixers.model import Edit, FixContext, FixProposal
from bot.fixers.text import char_col, failing_file, line_edit, read_text, repo_files


def fix_local_import(ctx: FixContext) -> FixProposal | None:
    missing = missing_import(ctx.diagnosis)
    if missing is None:
        return None
    beside = failing_file(ctx)
    top = missing.module.split(".")[0]
    base = local_package_dir(ctx.worktree, top, beside)
    if base is None or (top not in modules_in(base) and distribution_for(top, guess=False)):
        return None  # not the repo's module, or a known third-party one that merely looks like it
    fixed = _closest_module(base, missing.module) if missing.name is None else _closest_name(base, missing)
    if fixed is None:
        return None
    old, new = fixed
    edits, evidence = _edits(ctx, beside, missing, old, new)
    if not edits:
        return None
    return FixProposal(
        fixer="rule:fix-local-import",
        description=f"import {new} instead of the missing {old} in {', '.join(sorted({e.path for e in edits}))}",
        root_cause=f"The code imports {old}, which the repo does not define; {new} is the closest that exists.",
        edits=edits,
        evidence=evidence,
    )


def _closest_module(base: Path, module: str) -> tuple[str, str] | None:
    """(missing segment, closest existing sibling) for the first segment of `module` that is absent."""
    folder = base
    for part in module.split("."):
        if (folder / part).is_dir() or (folder / f"{part}.py").is_file():
            folder = folder / part
            continue
        close = difflib.get_close_matches(part, modules_in(folder), n=1, cutoff=CUTOFF)
        return (part, close[0]) if close else None
    return None


def _closest_name(base: Path, missing: MissingImport) -> tuple[str, str] | None:
    name = missing.name
    if name is None:  # a whole module is missing: _closest_module's case
        return None
    path = base.joinpath(*missing.module.split("."))
    source = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    names = modules_in(path) if path.is_dir() else []
    if source.is_file():
        names += defined_names(source.read_text(encoding="utf-8", errors="replace"))
    if name in names:
        return None
    close = difflib.get_close_matches(name, names, n=1, cutoff=CUTOFF)
    return (name, close[0]) if close else None


def _edits(
    ctx: FixContext, beside: str | None, missing: MissingImport, old: str, new: str
) -> tuple[list[Edit], list[str]]:
    """Edits of the file at the traceback location; of every file with that import when the
    location does not hold it."""
    edits: list[Edit] = []
    evidence = [missing.line]
    candidates = [beside] if beside else []
    for rel in candidates + [f for f in repo_files(ctx.worktree, (".py",)) if f != beside]:
        text = read_text(ctx.worktree, rel)
        if text is None:
            continue  # unreadable: nothing to rewrite
        changes = _rewrite(text, missing, old, new)
        if changes:
            edits += line_edit(rel, text, changes)
            lines = text.split("\n")
            evidence += [f"{rel}:{n}: {lines[n - 1].strip()}" for n in sorted(changes)]
        if edits and rel == beside:
            break
    return edits, evidence


def _rewrite(text: str, missing: MissingImport, old: str, new: str) -> dict[int, str]:
    """Changed lines (1-based → new text) of a file whose imports use the missing module/name."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return {}
    lines = text.split("\n")
    if missing.name is None:
        spots = _module_spots(tree, lines, missing, old)
    elif _imports_name(tree, missing):
        spots = _name_spots(tree, missing.name)
    else:
        return {}
    changes: dict[int, str] = {}
    for line_no, col in sorted(spots, reverse=True):  # right to left keeps columns valid
        line = changes.get(line_no, lines[line_no - 1])
        col = char_col(lines[line_no - 1], col)
        if line[col : col + len(old)] == old:
            changes[line_no] = line[:col] + new + line[col + len(old) :]
    return changes


def _module_spots(tree: ast.AST, lines: list[str], missing: MissingImport, old: str) -> list[tuple[int, int]]:
    """(line, byte column) of the missing segment in each import of the missing module."""
    spots = []
    prefix = missing.module.split(old)[0]  # "src." for src.modles
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and _imports(node, missing.module):
            line = lines[node.lineno - 1]
            found = re.search(r"\bfrom\s+\.*" + re.escape(node.module) + r"\b", line)
            if found:
                at = found.end() - len(node.module) + node.module.rfind(old, 0, len(node.module))
                spots.append((node.lineno, len(line[:at].encode("utf-8"))))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if (alias.name + ".").startswith(missing.module + "."):
                    spots.append((alias.lineno, alias.col_offset + len(prefix.encode("utf-8"))))
    return spots


def _imports(node: ast.ImportFrom, module: str) -> bool:
    # Absolute `from src.modles import` or relative `from .modles import` inside src/.
    written = node.module or ""
    return (written + ".").startswith(module + ".") or (node.level > 0 and module.endswith("." + written))


def _imports_name(tree: ast.AST, missing: MissingImport) -> bool:
    return any(
        isinstance(node, ast.ImportFrom)
        and _imports(node, missing.module)
        and any(a.name == missing.name for a in node.names)
        for node in ast.walk(tree)
    )


def _name_spots(tree: ast.AST, name: str) -> list[tuple[int, int]]:
    """The imported name and its uses, where it was imported without `as`."""
    spots = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            spots += [(a.lineno, a.col_offset) for a in node.names if a.name == name]
        elif isinstance(node, ast.Name) and node.id == name:
            spots.append((node.lineno, node.col_offset))
    return spots
