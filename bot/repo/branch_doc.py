"""The branch's docs page, `docs/<branch>.md`, and its "Fixes" log.

Naming: a `/` in the branch name becomes `-` (`feat/lr` → `docs/feat-lr.md`), keeping `docs/`
flat, unless the team already keeps the branch's page in folders (`docs/feat/lr.md` exists):
then that page is the branch's. Each fix appends one entry at the end of the page's `## Fixes` section (created at the end
of the page when missing, the page itself with a `# <branch>` title when missing). Everything
else in the page is kept byte for byte, line endings included. The entry is redacted as its last
step (its summary and root cause may come from a log or a model); the rest of the page is not
the bot's to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from bot.core.errors import BadInput
from bot.core.secrets import Redactor

SECTION = "## Fixes"


@dataclass
class FixEntry:
    attempt: int
    category: str  # the failure category, e.g. "nan_loss"
    summary: str  # one line: what failed
    root_cause: str
    fixer: str  # "rule:lower-lr", "llm:<model>", "relaunch"
    files: list[str] = field(default_factory=list)  # what the fix changed
    run_id: str | None = None  # the failed run
    when: datetime | None = None  # defaults to now (UTC)


def doc_path(branch: str, worktree: Path | None = None) -> str:
    """`docs/<branch>.md`, with `/` as `-`; the team's own `docs/<a>/<b>.md` when `worktree`
    has that page and not the flat one."""
    flat = f"docs/{branch.replace('/', '-')}.md"
    if worktree is None or "/" not in branch or (Path(worktree) / flat).exists():
        return flat
    nested = f"docs/{branch}.md"
    path = Path(worktree) / nested
    return nested if path.is_file() and not path.is_symlink() else flat


def doc_candidates(branch: str) -> list[str]:
    """The pages that may be the branch's: `docs/<a>/<b>.md` and `docs/<a>-<b>.md`."""
    return list(dict.fromkeys((f"docs/{branch}.md", f"docs/{branch.replace('/', '-')}.md")))


def add_fix_entry(worktree: Path, branch: str, entry: FixEntry, redactor: Redactor) -> str:
    """Append `entry` to the branch's docs page in `worktree`; return the page's relative path."""
    rel = doc_path(branch, worktree)
    root = Path(worktree).resolve()
    path = root / rel
    if path.is_symlink() or (path.exists() and not path.is_file()) or root not in path.resolve().parents:
        raise BadInput(f"{rel} is not a regular file inside the worktree")
    text = path.read_bytes().decode("utf-8", "surrogateescape") if path.exists() else ""
    text = text or f"# {branch}\n"  # a missing or empty page starts with its title
    newline = "\r\n" if "\r\n" in text else "\n"
    updated = insert_entry(text, render_entry(entry, redactor, newline), newline)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(updated.encode("utf-8", "surrogateescape"))
    return rel


def render_entry(entry: FixEntry, redactor: Redactor, newline: str = "\n") -> str:
    when = (entry.when or datetime.now(timezone.utc)).astimezone(timezone.utc)
    files = ", ".join(f"`{_one_line(f)}`" for f in entry.files) or "no files"
    lines = [
        f"### {when:%Y-%m-%d %H:%M} UTC — attempt {entry.attempt}",
        "",
        f"- **Failed:** `{_one_line(entry.category)}` — {_one_line(entry.summary)}",
        f"- **Root cause:** {_one_line(entry.root_cause)}",
        f"- **Changed:** {files} ({_one_line(entry.fixer)})",
        f"- **Failed run:** `{_one_line(entry.run_id)}`" if entry.run_id else "- **Failed run:** unknown",
    ]
    return redactor.text(newline.join(lines) + newline)


def insert_entry(text: str, entry: str, newline: str = "\n") -> str:
    """`text` with `entry` added at the end of its Fixes section (the section added if missing)."""
    lines = text.splitlines(keepends=True)
    start = _section_start(lines)
    if start is None:
        return _append_block(text, f"{SECTION}{newline}{newline}{entry}", newline)
    end = _section_end(lines, start)
    head, tail = "".join(lines[:end]), "".join(lines[end:])
    block = _append_block(head, entry, newline)
    return block + (newline if tail else "") + tail


def _append_block(text: str, block: str, newline: str) -> str:
    """`text` + a blank line + `block`, adding only the newlines that are missing."""
    if not text.strip():
        return text + block
    if not text.endswith(("\n", "\r")):
        text += newline
    if not text.endswith(newline + newline) and not text.endswith("\n\n"):
        text += newline
    return text + block


def _headings(lines: list[str]):
    """(index, stripped line) of every heading outside fenced code blocks."""
    fenced = False
    for i, line in enumerate(lines):
        stripped = line.rstrip("\r\n")
        if stripped.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced and stripped.startswith("#"):
            yield i, stripped.rstrip()


def _section_start(lines: list[str]) -> int | None:
    for i, heading in _headings(lines):
        if heading == SECTION:
            return i
    return None


def _section_end(lines: list[str], start: int) -> int:
    for i, heading in _headings(lines):
        if i > start and (heading.startswith("# ") or heading.startswith("## ")):
            return i
    return len(lines)


def _one_line(value: object) -> str:
    return " ".join(str(value).split())
