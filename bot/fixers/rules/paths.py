"""A data file is missing → the closest existing path, written into the literal that named it
(`data/trian.csv` → `data/train.csv`)."""

from __future__ import annotations

import difflib
import itertools
import re
from pathlib import Path, PurePath

from bot.fixers.model import FixContext, FixProposal
from bot.fixers.text import failing_file, failure_texts, line_edit, read_text, repo_files

CUTOFF = 0.8
_MAX_SIBLINGS = 20_000
_TEXT_FILES = (".py", ".yaml", ".yml", ".json", ".toml", ".cfg", ".ini", ".sh")
_MISSING = (
    re.compile(r"No such file or directory: ['\"]([^'\"]+)['\"]"),
    re.compile(r"[Ff]ile ['\"]?([^\s'\"]+)['\"]? (?:does not exist|not found)"),
    re.compile(r"(?:does not exist|not found): ['\"]?([^\s'\"]+)['\"]?"),
)


def closest_path(ctx: FixContext) -> FixProposal | None:
    found = _missing_path(ctx)
    if found is None:
        return None
    missing, message = found
    rel = _relative(ctx.worktree, missing)
    if not rel:
        return None
    fixed = _closest_existing(ctx.worktree, rel)
    if fixed is None:
        return None
    site = _literal_site(ctx, missing, rel)
    if site is None:
        return None
    path, literal = site
    new_literal = _rewrite_tail(literal, rel, fixed)
    if new_literal is None:
        return None
    text = read_text(ctx.worktree, path)
    if text is None:  # _literal_site has just found the literal in it; gone or unreadable since
        return None
    changes = _replace_quoted(text, literal, new_literal)
    return FixProposal(
        fixer="rule:closest-path",
        description=f"read {'/'.join(fixed)} instead of the missing {'/'.join(rel)} in {path}",
        root_cause=f"The run opens {'/'.join(rel)}, which does not exist; {'/'.join(fixed)} is the closest path that does.",
        edits=line_edit(path, text, changes),
        evidence=[message] + [f"{path}:{n}: {text.split(chr(10))[n - 1].strip()}" for n in sorted(changes)],
    )


def _missing_path(ctx: FixContext) -> tuple[str, str] | None:
    for text in failure_texts(ctx.diagnosis):
        if "artifact" in text.lower():
            continue  # a W&B artifact name: the repo's files cannot tell which ones exist
        for pattern in _MISSING:
            match = pattern.search(text)
            if match:
                return match.group(1), text.strip()
    return None


def _relative(root: Path, missing: str) -> list[str] | None:
    """The missing path's parts relative to the worktree (a traceback may carry the job's
    absolute path: its longest tail whose first part exists in the worktree is taken)."""
    parts = [p for p in PurePath(missing).parts if p not in (".", "/")]
    if ".." in parts:
        return None  # outside the worktree, or too clever to rewrite safely
    if not PurePath(missing).is_absolute():
        return parts or None
    for start in range(len(parts) - 1):
        if (Path(root) / parts[start]).exists():
            return parts[start:]
    return None


def _closest_existing(root: Path, parts: list[str]) -> list[str] | None:
    """The parts with each absent one replaced by its closest sibling; None if one has none
    or nothing was absent."""
    folder, fixed = Path(root), []
    for part in parts:
        if not (folder / part).exists():
            close = difflib.get_close_matches(part, _siblings(folder), n=1, cutoff=CUTOFF)
            if not close:
                return None
            part = close[0]
        fixed.append(part)
        folder = folder / part
    return fixed if fixed != parts and folder.exists() else None


def _siblings(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    names = (p.name for p in folder.iterdir() if not p.name.startswith("."))
    return sorted(itertools.islice(names, _MAX_SIBLINGS))  # a data folder may hold millions


def _literal_site(ctx: FixContext, missing: str, rel: list[str]) -> tuple[str, str] | None:
    """(file, literal) of the string in the repo that names the missing path: the whole path,
    or its tail (code that joins a folder and a file name), the traceback's file first."""
    tails = [missing] + ["/".join(rel[i:]) for i in range(len(rel))]
    where = failing_file(ctx)
    files = ([where] if where else []) + [
        f for f in repo_files(ctx.worktree, _TEXT_FILES, skip_tests=True) if f != where
    ]
    texts: dict[str, str | None] = {}  # each file read once, when first needed
    for tail in dict.fromkeys(tails):
        for variant in (tail, f"./{tail}"):
            pattern = _quoted_pattern(variant)
            for rel_file in files:
                if rel_file not in texts:
                    texts[rel_file] = read_text(ctx.worktree, rel_file)
                if texts[rel_file] and pattern.search(texts[rel_file]):
                    return rel_file, variant
    return None


def _quoted_pattern(literal: str) -> re.Pattern:
    # In quotes (Python, JSON, YAML) or a bare YAML/INI value after `:` or `=`.
    escaped = re.escape(literal)
    return re.compile(rf"""(['"]){escaped}\1|(?<=[:=] ){escaped}(?=\s*(?:#|$))""", re.M)


def _rewrite_tail(literal: str, rel: list[str], fixed: list[str]) -> str | None:
    """The literal with its trailing path parts replaced by the fixed ones."""
    segments = literal.split("/")
    k = min(len(segments), len(rel))
    if segments[-k:] != rel[-k:] or fixed[-k:] == rel[-k:]:
        return None  # the wrong part is not in this literal (e.g. a folder from another setting)
    if fixed[:-k] != rel[:-k]:
        return None
    return "/".join(segments[:-k] + fixed[-k:])


def _replace_quoted(text: str, literal: str, new: str) -> dict[int, str]:
    changes = {}
    pattern = _quoted_pattern(literal)
    for number, line in enumerate(text.split("\n"), 1):
        if pattern.search(line):
            changes[number] = pattern.sub(lambda m: m.group(0).replace(literal, new), line)
    return changes
