"""The read-only look-ups the model may make while it works out a fix: read_file, grep, list_dir.

Every path goes through one check (`Lookups.confine`): relative, no `..`, nothing in `.git/`,
nothing the repo's `fix.denied_paths` or the built-in secret-file list names, and, resolved with
its symlinks, still inside the worktree. Reads are bounded however large a file is (a 1 GB file
costs a few MB of reading at most); every answer is capped in bytes and redacted before it goes
back to the model. A refused or failed call is answered as an error, never raised: the model
reads why and carries on.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from bot.core.secrets import Redactor
from bot.fixers.patch import glob_match

READ_FILE, GREP, LIST_DIR = "read_file", "grep", "list_dir"
LOOKUP_TOOLS = (READ_FILE, GREP, LIST_DIR)
MAX_ANSWER_CHARS = 8_000  # per answer; about 2k tokens
MAX_SCAN_BYTES = 4 * 1024 * 1024  # read_file reads at most this much of a file, whatever its size
MAX_GREP_FILE_BYTES = 1024 * 1024  # grep skips larger files (data, checkpoints)
MAX_GREP_FILES = 5_000
MAX_GREP_MATCHES = 60
MAX_LINE_CHARS = 400
MAX_DIR_ENTRIES = 200
MAX_PATTERN_CHARS = 200
DEFAULT_READ_LINES = 200
# Files that hold credentials: never shown, whatever the repo config allows.
SECRET_FILES = (
    "**/.env",
    "**/.env.*",
    "**/*.pem",
    "**/*.key",
    "**/id_rsa*",
    "**/id_ed25519*",
    "**/.netrc",
    "**/.pypirc",
    "**/credentials*",
)
# A quantified group that is itself quantified ((a+)+, (x*)*): backtracking that can run for
# hours on one line. Python's re has no timeout, so such patterns are refused.
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[+*}](?:[^()\\]|\\.)*\)[+*{]")


class Refused(Exception):
    """A look-up the bot will not make; the message goes back to the model."""


@dataclass(frozen=True)
class ToolResult:
    text: str
    is_error: bool = False


def lookup_tool_definitions() -> list[dict[str, Any]]:
    return [
        {
            "name": READ_FILE,
            "description": (
                "Read lines of a file in the repository (exact text, numbered). Paths are relative "
                f"to the repository root. At most {MAX_ANSWER_CHARS} characters come back."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "path": {"type": "string"},
                    "start": {"type": "integer", "description": "first line, from 1"},
                    "end": {"type": "integer", "description": "last line, inclusive"},
                },
                "required": ["path"],
            },
        },
        {
            "name": GREP,
            "description": (
                "Search the repository's text files for a regular expression (Python syntax); "
                f"returns path:line: text, at most {MAX_GREP_MATCHES} matches."
            ),
            "input_schema": {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "glob": {"type": "string", "description": "files to search, e.g. **/*.py (default: all)"},
                },
                "required": ["pattern"],
            },
        },
        {
            "name": LIST_DIR,
            "description": "List a folder of the repository (folders end with /).",
            "input_schema": {
                "type": "object",
                "properties": {"path": {"type": "string", "description": "relative folder; . for the root"}},
                "required": ["path"],
            },
        },
    ]


@dataclass
class Lookups:
    """The look-ups, confined to `root`; `denied`: globs never shown (the repo's denied paths)."""

    root: Path
    denied: tuple[str, ...] = ()
    redactor: Redactor | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()

    def call(self, name: str, args: Any) -> ToolResult:
        """The answer to one tool call, redacted and capped; errors are answers too."""
        if not isinstance(args, dict):
            return ToolResult(f"{name}: the input must be an object", is_error=True)
        try:
            if name == READ_FILE:
                text = self.read_file(args.get("path"), args.get("start"), args.get("end"))
            elif name == GREP:
                text = self.grep(args.get("pattern"), args.get("glob"))
            elif name == LIST_DIR:
                text = self.list_dir(args.get("path", "."))
            else:
                raise Refused(f"unknown tool {name!r}")
        except Refused as exc:
            return ToolResult(self._redact(f"{name} refused: {exc}"), is_error=True)
        return ToolResult(cap(self._redact(text), MAX_ANSWER_CHARS))

    # -- the one path check ---------------------------------------------------------------

    def confine(self, rel: Any, *, folder: bool = False) -> Path:
        """The path `rel` names inside the worktree, or Refused saying why not."""
        if not isinstance(rel, str) or "\0" in rel or "\\" in rel:
            raise Refused("the path must be a string of forward-slash separated names")
        rel = rel.strip() or "."
        pure = PurePosixPath(rel)
        if pure.is_absolute():
            raise Refused(f"{rel} is absolute; paths are relative to the repository root")
        if ".." in pure.parts:
            raise Refused(f"{rel} goes up (..); only the repository can be read")
        if ".git" in pure.parts:
            raise Refused(f"{rel} is inside .git")
        shown = pure.as_posix()
        if shown != "." and self._denied(shown):
            raise Refused(f"{rel} is a denied path")
        try:
            target = (self.root / pure).resolve()
        except (OSError, RuntimeError):  # a symlink loop
            raise Refused(f"{rel} cannot be resolved") from None
        if target != self.root and self.root not in target.parents:
            raise Refused(f"{rel} leads outside the repository (a symlink)")
        inside = target.relative_to(self.root).as_posix()
        if ".git" in PurePosixPath(inside).parts or (inside != "." and self._denied(inside)):
            raise Refused(f"{rel} leads to a denied path")
        if folder and not target.is_dir():
            raise Refused(f"{rel} is not a folder")
        if not folder and not target.is_file():
            raise Refused(f"{rel} is not a file" if target.exists() else f"{rel} does not exist")
        return target

    def _denied(self, rel: str) -> bool:
        """Denied by name, or a folder whose contents are (`.github` under `.github/**`)."""
        patterns = (*self.denied, *SECRET_FILES)
        return any(glob_match(rel, p) or glob_match(rel + "/-", p) for p in patterns)

    # -- the tools ------------------------------------------------------------------------

    def read_file(self, path: Any, start: Any = None, end: Any = None) -> str:
        target = self.confine(path)
        first = _line_number(start, 1)
        last = max(first, _line_number(end, first + DEFAULT_READ_LINES - 1))
        lines, complete = _lines(target, first, last)
        size = target.stat().st_size
        if not lines:
            return f"{path}: no lines from {first} ({size} bytes)"
        body = "".join(f"{first + i:6}\t{_short(line)}\n" for i, line in enumerate(lines))
        tail = "" if complete else f"[read stops at the first {MAX_SCAN_BYTES} bytes of this {size}-byte file]\n"
        return f"{path}, lines {first}-{first + len(lines) - 1}:\n{body}{tail}"

    def grep(self, pattern: Any, glob: Any = None) -> str:
        regex = _compile(pattern)
        where = glob if isinstance(glob, str) and glob.strip() else "**/*"
        matches: list[str] = []
        for rel in self._files(where):
            matches += _grep_file(self.root / rel, rel, regex, MAX_GREP_MATCHES - len(matches))
            if len(matches) >= MAX_GREP_MATCHES:
                matches.append(f"[stopped at {MAX_GREP_MATCHES} matches]")
                break
        return "\n".join(matches) if matches else f"no match for {pattern!r} in {where}"

    def list_dir(self, path: Any) -> str:
        folder = self.confine(path, folder=True)
        entries = []
        for entry in sorted(folder.iterdir(), key=lambda p: p.name)[: MAX_DIR_ENTRIES + 1]:
            rel = entry.relative_to(self.root).as_posix()
            if entry.name == ".git" or self._denied(rel):
                continue
            entries.append(entry.name + ("/" if entry.is_dir() and not entry.is_symlink() else ""))
        more = "\n[more entries left out]" if len(entries) > MAX_DIR_ENTRIES else ""
        return "\n".join(entries[:MAX_DIR_ENTRIES]) + more if entries else "(empty)"

    def _files(self, glob: str) -> list[str]:
        """Regular files under the root matching `glob`, never inside .git, never denied, never
        through a symlink (os.walk does not follow linked folders; linked files are skipped)."""
        found: list[str] = []
        for here, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in sorted(files):
                path = Path(here) / name
                rel = path.relative_to(self.root).as_posix()
                if path.is_symlink() or self._denied(rel) or not _glob_ok(rel, glob):
                    continue
                found.append(rel)
                if len(found) >= MAX_GREP_FILES:
                    return found
        return found

    def _redact(self, text: str) -> str:
        return self.redactor.text(text) if self.redactor else text


def cap(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > limit // 2 else limit] + f"\n[… {len(text) - limit} more characters not shown]"


def _glob_ok(rel: str, glob: str) -> bool:
    return glob_match(rel, glob) or fnmatch.fnmatch(PurePosixPath(rel).name, glob)


def _line_number(value: Any, default: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        return default
    return max(1, value)


def _lines(path: Path, first: int, last: int) -> tuple[list[str], bool]:
    """Lines first..last of the file, reading at most MAX_SCAN_BYTES; (lines, whether the scan
    stayed within the limit)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SCAN_BYTES + 1)
    except OSError as exc:
        raise Refused(f"cannot read it ({type(exc).__name__})") from None
    complete = len(data) <= MAX_SCAN_BYTES
    if b"\0" in data[:8192]:
        raise Refused("it is a binary file")
    text = data[:MAX_SCAN_BYTES].decode("utf-8", errors="replace")
    lines = text.splitlines()
    return lines[first - 1 : last], complete


def _short(line: str) -> str:
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + " […]"


def _compile(pattern: Any) -> re.Pattern[str]:
    if not isinstance(pattern, str) or not pattern:
        raise Refused("the pattern must be a non-empty string")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise Refused(f"the pattern is longer than {MAX_PATTERN_CHARS} characters")
    if _NESTED_QUANTIFIER.search(pattern):
        raise Refused("nested quantifiers like (a+)+ are not allowed")
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))  # not a regex: search for the text itself


def _grep_file(path: Path, rel: str, regex: re.Pattern[str], room: int) -> list[str]:
    try:
        if path.stat().st_size > MAX_GREP_FILE_BYTES:
            return []
        data = path.read_bytes()
    except OSError:
        return []
    if b"\0" in data[:8192]:
        return []
    hits = []
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        if regex.search(line[: MAX_LINE_CHARS * 4]):
            hits.append(f"{rel}:{number}: {_short(line.strip())}")
            if len(hits) >= room:
                break
    return hits
