"""Where a repo declares the distributions its job installs, and which ones: the requirements
file the launch setup names (`pip install -r FILE`), else requirements.txt, else (with no
requirements.txt, or a setup that installs the project: `pip install -e .`, `uv sync`) the
`[project] dependencies` of pyproject.toml, read as text: the bot runs on Python 3.10, which has
no TOML parser, and only this array matters."""

from __future__ import annotations

import re
from pathlib import Path

from bot.fixers.distributions import canonical
from bot.fixers.text import read_text

DEFAULT_FILE = "requirements.txt"
PYPROJECT = "pyproject.toml"
_INSTALLS_PROJECT = re.compile(r"\b(?:pip install (?:-e |--editable )?\.(?:\[[\w,-]+\])?(?=\s|$)|uv sync\b)")


def dependency_file(worktree: Path, config: dict) -> str:
    """The file the job's dependencies are declared in (see the module doc), relative to the repo."""
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
    """pyproject.toml's `[project] dependencies`, or None when it has none."""
    lines = (text or "").split("\n")
    found = dependencies_array(lines)
    if found is None:
        return None
    start, end = found
    body = "\n".join(lines[start : end + 1])
    body = body[body.index("[") + 1 :]
    return re.findall(r"[\"']([^\"'\n]+)[\"']", "\n".join(line.split("#", 1)[0] for line in body.split("\n")))


def dependencies_array(lines: list[str]) -> tuple[int, int] | None:
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
