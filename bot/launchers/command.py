"""For teams that already have a launch script: a templated shell command.

`launch.command: python tools/launch_job.py --branch {branch} --commit {commit}`

Each value is shell-quoted where it is put, so a branch named `x;rm -rf ~` stays one
argument. Write placeholders bare: one inside shell quotes (`"{branch}"`, `'--b={branch}'`) or
next to a quote is refused, since quoting a quoted value undoes its quoting. The script runs like a local job:
its exit code and output are the run's, and a job id it prints is reported by `status`.
A configured `launch.setup` runs first, as for the local backend.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import replace
from pathlib import Path
from string import Formatter
from typing import Any

from bot.core.errors import BadInput
from bot.launchers.base import Handle, LaunchSpec, LaunchStatus
from bot.launchers.local import LocalLauncher

PLACEHOLDERS = ("branch", "commit", "repo", "worktree", "run_id")

# What launch scripts print when they submit something; the last match wins.
JOB_ID_PATTERNS = (
    re.compile(r"Submitted batch job (\d+)"),  # sbatch
    re.compile(r"\b(raysubmit_[A-Za-z0-9]+)"),  # ray job submit
    re.compile(r"\bjob[ _-]?id\s*[:=]\s*['\"]?([\w.:/-]+)", re.I),  # job id: 123, JOB_ID=abc
)
LOG_TAIL_BYTES = 64 * 1024


def render_command(template: str, values: dict[str, str]) -> str:
    """Fill the placeholders of `template`, each value shell-quoted; anything else → BadInput."""
    try:
        parts = list(Formatter().parse(template))
    except ValueError as exc:
        raise BadInput(f"launch.command: bad template {template!r}: {exc}") from None
    out = []
    quote: str | None = None  # the shell quote open where the text has got to: None, ' or "
    for index, (literal, name, format_spec, conversion) in enumerate(parts):
        out.append(literal)
        quote = _quote_state(literal, quote)
        if name is None:
            continue
        if name not in PLACEHOLDERS or format_spec or conversion:
            raise BadInput(
                f"launch.command: unknown placeholder {_shown(name, conversion, format_spec)} "
                f"(known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}; "
                "write {{ and }} for a literal brace)"
            )
        following = parts[index + 1][0] if index + 1 < len(parts) else ""
        # Inside quotes the value's own quoting is undone ("'x$(id)'" runs $(id)); next to a
        # quote, `$` or `\` it is changed. Refuse rather than guess what was meant.
        if quote is not None or literal[-1:] in QUOTE_NEIGHBOURS or following[:1] in QUOTE_NEIGHBOURS[:2]:
            raise BadInput(
                f"launch.command: {{{name}}} is inside or next to a shell quote in {template!r}; "
                "don't quote placeholders; they are quoted for you"
            )
        out.append(shlex.quote(str(values[name])))
    return "".join(out)


QUOTE_NEIGHBOURS = ("'", '"', "$", "\\")


def _quote_state(text: str, quote: str | None) -> str | None:
    """The shell quote open after `text`, given the one open before it (a plain POSIX scan:
    backslash escapes outside single quotes, no quotes inside single quotes)."""
    escaped = False
    for char in text:
        if escaped:
            escaped = False
        elif char == "\\" and quote != "'":
            escaped = True
        elif quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
    return quote


def _shown(name: str, conversion: str | None, format_spec: str | None) -> str:
    return "{" + name + (f"!{conversion}" if conversion else "") + (f":{format_spec}" if format_spec else "") + "}"


def find_job_id(text: str) -> str | None:
    found = None
    for line in text.splitlines():
        for pattern in JOB_ID_PATTERNS:
            if match := pattern.search(line):
                found = match.group(1)
                break
    return found


class CommandLauncher(LocalLauncher):
    name = "command"
    installs_requirements = False  # a launch script submits the job elsewhere: installing here helps nothing

    def launch(self, spec: LaunchSpec) -> Handle:
        return super().launch(self._rendered(spec))

    def check_ready(self, spec: LaunchSpec) -> None:
        super().check_ready(self._rendered(spec))

    @staticmethod
    def _rendered(spec: LaunchSpec) -> LaunchSpec:
        values = {
            "branch": spec.branch,
            "commit": spec.commit,
            "repo": spec.repo,
            "worktree": str(spec.worktree),
            "run_id": spec.run_id,
        }
        return replace(spec, command=render_command(spec.command, values))

    def supervisor_options(self) -> dict[str, Any]:
        return {"find_job_id": True}

    def status(self, handle: Handle) -> LaunchStatus:
        status = super().status(handle)
        if status.job_id is None:  # still running: look at what it printed so far
            status.job_id = find_job_id(log_tail(Path(handle["log_path"])))
        return status


def log_tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, 2) - LOG_TAIL_BYTES))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""
