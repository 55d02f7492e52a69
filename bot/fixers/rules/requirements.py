"""A third-party module is missing → add its distribution to the file the job installs from:
the requirements file the launch setup names (`pip install -r FILE`), else requirements.txt, else
(with no requirements.txt, or a setup that installs the project: `pip install -e .`, `uv sync`)
the `[project] dependencies` of pyproject.toml."""

from __future__ import annotations

import re
from pathlib import Path

from bot.fixers.distributions import canonical, distribution_for, is_stdlib, top_level
from bot.fixers.imports import local_package_dir, missing_import, repo_defines
from bot.fixers.model import Edit, FixContext, FixProposal
from bot.fixers.text import failing_file, read_text

DEFAULT_FILE = "requirements.txt"
PYPROJECT = "pyproject.toml"
_INSTALLS_PROJECT = re.compile(r"\b(?:pip install (?:-e |--editable )?\.(?:\[[\w,-]+\])?(?=\s|$)|uv sync\b)")


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


def dependency_file(worktree: Path, config: dict) -> str:
    """The file the job's dependencies are declared in (see the module doc)."""
    setup = ((config or {}).get("launch") or {}).get("setup") or ""
    found = re.search(r"(?:-r|--requirement)[ =](\S+\.txt)\b", setup)
    if found:
        return found.group(1)
    has_project = _project_dependencies(read_text(worktree, PYPROJECT)) is not None
    if has_project and (_INSTALLS_PROJECT.search(setup) or not (Path(worktree) / DEFAULT_FILE).is_file()):
        return PYPROJECT
    return DEFAULT_FILE


def declared(path: str, text: str | None) -> set[str]:
    """Canonical names of the distributions a dependency file declares."""
    if text is None:
        return set()
    if path == PYPROJECT:
        return {_name(spec) for spec in _project_dependencies(text) or []} - {""}
    return listed(text)


def _name(spec: str) -> str:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec)
    return canonical(found.group(1)) if found else ""


def listed(text: str) -> set[str]:
    """Canonical names of the distributions a requirements file lists (options and comments skipped)."""
    names = set()
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        found = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", line)
        if found and not line.startswith("-"):
            names.add(canonical(found.group(0)))
    return names


def _project_dependencies(text: str | None) -> list[str] | None:
    """pyproject.toml's `[project] dependencies`, or None when it has none. Read as text: the
    bot runs on Python 3.10, which has no TOML parser, and only this array matters."""
    lines = (text or "").split("\n")
    found = _dependencies_array(lines)
    if found is None:
        return None
    start, end = found
    body = "\n".join(lines[start : end + 1])
    body = body[body.index("[") + 1 :]
    return re.findall(r"[\"']([^\"'\n]+)[\"']", "\n".join(line.split("#", 1)[0] for line in body.split("\n")))


def _dependencies_array(lines: list[str]) -> tuple[int, int] | None:
    """The first and last line of `[project] dependencies = [...]`."""
    section = None
    for n, line in enumerate(lines):
        if re.match(r"\s*\[", line) and not re.match(r"\s*\[\s*[\"'\]]", line):
            section = line.split("#", 1)[0].strip()
        if section == "[project]" and re.match(r"\s*dependencies\s*=\s*\[", line):
            if "]" in line.split("#", 1)[0][line.index("[") + 1 :]:
                return n, n
            end = next((m for m in range(n + 1, len(lines)) if lines[m].strip().startswith("]")), None)
            return (n, end) if end is not None else None
    return None


def _add_to_pyproject(text: str, dist: str) -> Edit | None:
    """`dist` as the last item of `[project] dependencies`, written like the items before it."""
    lines = text.split("\n")
    found = _dependencies_array(lines)
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
    entries = [line for line in block[1:-1] if line.strip() and not line.strip().startswith("#")]
    last = entries[-1] if entries else None
    indent = last[: len(last) - len(last.lstrip())] if last else "    "
    quote = "'" if last and last.strip().startswith("'") else '"'
    if last is not None and not last.split("#", 1)[0].rstrip().endswith(","):
        block = [f"{line.rstrip()}," if line is last else line for line in block]
    added = [*block[:-1], f"{indent}{quote}{dist}{quote},", block[-1]]
    return Edit(path=PYPROJECT, search="\n".join(lines[start : end + 1]), replace="\n".join(added))


def _append(path: str, text: str | None, dist: str) -> Edit:
    if text is None:
        return Edit(path=path, search="", replace=f"{dist}\n")
    if text == "" or text.endswith("\n"):
        return Edit(path=path, search="", replace=f"{dist}\n", append=True)
    # The file has no final newline: keep it that way.
    return Edit(path=path, search="", replace=f"\n{dist}", append=True)
