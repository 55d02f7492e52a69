"""A third-party module is missing → add its distribution to requirements.txt."""

from __future__ import annotations

import re

from bot.fixers.distributions import canonical, distribution_for, is_stdlib, top_level
from bot.fixers.imports import local_package_dir, missing_import, repo_defines
from bot.fixers.model import Edit, FixContext, FixProposal
from bot.fixers.text import failing_file, read_text

DEFAULT_FILE = "requirements.txt"


def add_requirement(ctx: FixContext) -> FixProposal | None:
    missing = missing_import(ctx.diagnosis)
    if missing is None or missing.name is not None:
        return None
    top = top_level(missing.module)
    if is_stdlib(top) or repo_defines(ctx.worktree, top):
        return None
    dist = distribution_for(top, guess=False)
    if dist is None and local_package_dir(ctx.worktree, top, failing_file(ctx)):
        return None  # an unknown name close to one of the repo's modules: a typo, fix-local-import's case
    dist = dist or distribution_for(top)
    if dist is None:
        return None
    path = requirements_file(ctx.config)
    text = read_text(ctx.worktree, path)
    if text is not None and canonical(dist) in listed(text):
        return None  # already required: the failure has another cause (wrong env, typo'd name)
    return FixProposal(
        fixer="rule:add-requirement",
        description=f"add missing dependency {dist} to {path}",
        root_cause=f"The code imports {missing.module}, but {dist} is not in {path}, so the run's environment lacks it.",
        edits=[_append(path, text, dist)],
        evidence=[missing.line, f"import {top} → distribution {dist}"],
    )


def requirements_file(config: dict) -> str:
    """The file the launch setup installs (`pip install -r FILE`), else requirements.txt."""
    setup = ((config or {}).get("launch") or {}).get("setup") or ""
    found = re.search(r"(?:-r|--requirement)[ =](\S+\.txt)\b", setup)
    return found.group(1) if found else DEFAULT_FILE


def listed(text: str) -> set[str]:
    """Canonical names of the distributions a requirements file lists (options and comments skipped)."""
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if found and not line.startswith("-"):
            names.add(canonical(found.group(0)))
    return names


def _append(path: str, text: str | None, dist: str) -> Edit:
    if text is None:
        return Edit(path=path, search="", replace=f"{dist}\n")
    if text == "" or text.endswith("\n"):
        return Edit(path=path, search="", replace=f"{dist}\n", append=True)
    # The file has no final newline: keep it that way.
    return Edit(path=path, search="", replace=f"\n{dist}", append=True)
