"""A third-party module is missing → add its distribution to the file the job installs from
(bot.fixers.dependencies), written like the file's own entries."""

from __future__ import annotations

from bot.fixers.dependencies import PYPROJECT, declared, dependencies_array, dependency_file
from bot.fixers.distributions import canonical, distribution_for, is_stdlib, top_level
from bot.fixers.imports import local_package_dir, missing_import, repo_defines
from bot.fixers.model import Edit, FixContext, FixProposal
from bot.fixers.text import failing_file, read_text


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
    path = dependency_file(ctx.worktree, ctx.config)
    text = read_text(ctx.worktree, path)
    if canonical(dist) in declared(path, text):
        return None  # already required: the failure has another cause (wrong env, typo'd name)
    edit = _add_to_pyproject(text or "", dist) if path == PYPROJECT else _append(path, text, dist)
    if edit is None:
        return None
    return FixProposal(
        fixer="rule:add-requirement",
        description=f"add missing dependency {dist} to {path}",
        root_cause=f"The code imports {missing.module}, but {dist} is not in {path}, so the run's environment lacks it.",
        edits=[edit],
        evidence=[missing.line, f"import {top} → distribution {dist}"],
    )


def _add_to_pyproject(text: str, dist: str) -> Edit | None:
    """`dist` as the last item of `[project] dependencies`, written like the items before it."""
    lines = text.split("\n")
    found = dependencies_array(lines)
    if found is None:
        return None
    start, end = found
    if start == end:  # one line: `dependencies = ["torch", "numpy"]`
        head = lines[start]
        inside = head[head.index("[") + 1 : head.rindex("]")].strip().rstrip(",")
        quote = "'" if inside.startswith("'") else '"'
        new = f"{quote}{dist}{quote}"
        one = head[: head.index("[") + 1] + (f"{inside}, {new}" if inside else new) + head[head.rindex("]") :]
        return Edit(path=PYPROJECT, search=head, replace=one)
    block = lines[start : end + 1]
    entries = [n for n, line in enumerate(block[:-1]) if n and line.strip() and not line.strip().startswith("#")]
    last = block[entries[-1]] if entries else None
    indent = last[: len(last) - len(last.lstrip())] if last else "    "
    quote = "'" if last and last.strip().startswith("'") else '"'
    if last is not None:
        block[entries[-1]] = _with_comma(last)
    added = [*block[:-1], f"{indent}{quote}{dist}{quote},", block[-1]]
    return Edit(path=PYPROJECT, search="\n".join(lines[start : end + 1]), replace="\n".join(added))


def _with_comma(item: str) -> str:
    """An array item's line ending its value with a comma, before any comment (`"numpy",  # pin`)."""
    value, hash_, comment = item.partition("#")
    if value.rstrip().endswith(","):
        return item
    return f"{value.rstrip()},{value[len(value.rstrip()) :]}{hash_}{comment}".rstrip()


def _append(path: str, text: str | None, dist: str) -> Edit:
    if text is None:
        return Edit(path=path, search="", replace=f"{dist}\n")
    if text == "" or text.endswith("\n"):
        return Edit(path=path, search="", replace=f"{dist}\n", append=True)
    # The file has no final newline: keep it that way.
    return Edit(path=path, search="", replace=f"\n{dist}", append=True)
