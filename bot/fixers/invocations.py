"""What a launch runs: the Python scripts it starts, the folder each runs in, and the arguments
each gets, read from `launch.command` and the shell scripts it calls, with where each argument
is written. A fix changes a hyperparameter where the run's value came from; an argument
written in a launch script is one such place, one in `launch.command` is not editable
(`.github/**` is never edited by a fix) but still tells which value the run used.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from pathlib import Path

from bot.fixers.text import read_text

COMMAND = "launch.command"  # the `path` of words written in the repo config
_MAX_SCRIPT_DEPTH = 3
# One shell word: unquoted runs, '…', "…" and backslash escapes glued together.
_WORD = re.compile(r"""(?:[^\s'"\\;&|()<>]+|'[^']*'|"(?:[^"\\]|\\.)*"|\\.)+""")
_SEPARATOR = re.compile(r"&&|\|\||[;&|]")
_ENV_ASSIGN = re.compile(r"^[A-Za-z_]\w*=")
# `python3.11`, `/venv/bin/python`, and an interpreter a variable names: `$PYTHON`, `${PYTHON:-python}`.
_PYTHON = re.compile(r"(?:^|/)python[\d.]*$|^\$\{?\w*PYTHON\w*(?::-[^}]*)?\}?$", re.I)
_SHELLS = {"bash", "sh", "zsh", "source", "."}
# Launchers that take options, then the script: `torchrun --nproc_per_node 2 train.py …`.
_LAUNCHERS = {"torchrun", "deepspeed", "accelerate", "composer", "exec", "nohup", "time", "srun", "uv", "poetry"}
_LAUNCHER_WORDS = {"launch", "run"}


@dataclass(frozen=True)
class Word:
    """One shell word as written: its unquoted text and where it sits."""

    text: str
    path: str  # repo-relative file, or COMMAND for the repo config's launch.command
    line: int  # 1-based line in that file (1 for launch.command)
    col: int  # character offsets of the word as written (quotes included)
    end_col: int
    line_text: str

    @property
    def editable_place(self) -> bool:
        return self.path != COMMAND


@dataclass
class Invocation:
    """One `python SCRIPT ARGS…` of the launch."""

    script: str  # repo-relative path of the Python script (or the module's file for `-m`)
    cwd: str  # repo-relative folder it runs in ("" for the repo root)
    args: list[Word] = field(default_factory=list)


def invocations(root: Path, config: dict) -> list[Invocation]:
    """The Python invocations of the repo's launch (setup excluded), in the order they run."""
    command = ((config or {}).get("launch") or {}).get("command") or ""
    lines = [(COMMAND, 1, line) for line in command.split("\n")]
    return _from_lines(Path(root), lines, "", 0)


def script_args(root: Path, config: dict, script: str) -> list[Word]:
    """The arguments of the launch's invocations of `script` (all of them, in order)."""
    return [word for inv in invocations(root, config) if inv.script == script for word in inv.args]


def _from_lines(root: Path, lines: list[tuple[str, int, str]], cwd: str, depth: int) -> list[Invocation]:
    found: list[Invocation] = []
    for command in _commands(_logical(lines)):
        if not command:
            continue
        head = command[0].text
        if head == "cd" and len(command) > 1:
            cwd = join_path(cwd, command[1].text)
            continue
        found += _from_command(root, command, cwd, depth)
    return found


def _from_command(root: Path, words: list[Word], cwd: str, depth: int) -> list[Invocation]:
    words = [w for w in _drop_env(words)]
    if not words:
        return []
    head = posixpath.basename(words[0].text)
    if head in _SHELLS and len(words) > 1:
        return _from_script(root, join_path(cwd, words[1].text), cwd, depth)
    if words[0].text.endswith(".sh") and "/" in words[0].text:
        return _from_script(root, join_path(cwd, words[0].text), cwd, depth)
    if head in _LAUNCHERS or _PYTHON.search(head):
        return _python_call(root, words[1:], cwd)
    return []


def _python_call(root: Path, words: list[Word], cwd: str) -> list[Invocation]:
    """The script and its arguments after `python [options]` or a launcher and its options."""
    for i, word in enumerate(words):
        text = word.text
        if text == "-m" and i + 1 < len(words):
            module = words[i + 1].text.replace(".", "/")
            for candidate in (f"{module}.py", f"{module}/__main__.py"):
                if (root / join_path(cwd, candidate)).is_file():
                    return [Invocation(join_path(cwd, candidate), cwd, words[i + 2 :])]
            return []
        if text.endswith(".py"):
            return [Invocation(join_path(cwd, text), cwd, words[i + 1 :])]
        if text in _LAUNCHER_WORDS or _PYTHON.search(posixpath.basename(text)) or text.startswith("-"):
            continue  # `accelerate launch`, `uv run python`, an option of the launcher
    return []


def _from_script(root: Path, rel: str, cwd: str, depth: int) -> list[Invocation]:
    if depth >= _MAX_SCRIPT_DEPTH:
        return []
    text = read_text(root, rel)
    if text is None:
        return []
    return _from_text(root, rel, text, cwd, depth + 1)


def text_invocations(root: Path, rel: str, text: str, cwd: str = "") -> list[Invocation]:
    """The invocations of the launch script `rel` if it read `text` (another version of it, as
    the base branch's), called from the folder `cwd`."""
    return _from_text(root, rel, text, cwd, 1)


def _from_text(root: Path, rel: str, text: str, cwd: str, depth: int) -> list[Invocation]:
    lines = [(rel, number, line) for number, line in enumerate(text.split("\n"), 1)]
    # A script runs in the caller's folder unless it changes folder itself.
    return _from_lines(root, lines, cwd, depth)


def _logical(lines: list[tuple[str, int, str]]) -> list[list[Word]]:
    """Each logical line's words: comments dropped, backslash continuations joined."""
    out: list[list[Word]] = []
    current: list[Word] = []
    for path, number, line in lines:
        body = _strip_comment(line)
        continued = body.rstrip().endswith("\\")
        if continued:
            body = body.rstrip()[:-1]
        current += _words(path, number, line, body)
        if not continued:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return out


def _words(path: str, number: int, line: str, body: str) -> list[Word]:
    words = []
    position = 0
    while position < len(body):
        separator = _SEPARATOR.match(body, position)
        if separator:
            words.append(Word(separator.group(0), path, number, position, separator.end(), line))
            position = separator.end()
            continue
        match = _WORD.match(body, position)
        if match is None:
            position += 1
            continue
        words.append(Word(_unquote(match.group(0)), path, number, match.start(), match.end(), line))
        position = match.end()
    return words


def _commands(logical: list[list[Word]]) -> list[list[Word]]:
    """Simple commands: logical lines split at `&&`, `||`, `;`, `|` and `&`."""
    commands: list[list[Word]] = []
    for words in logical:
        current: list[Word] = []
        for word in words:
            if _SEPARATOR.fullmatch(word.text) and word.end_col - word.col == len(word.text):
                commands.append(current)
                current = []
            else:
                current.append(word)
        commands.append(current)
    return commands


def _drop_env(words: list[Word]) -> list[Word]:
    """Leading `NAME=value` assignments and `env` of a command."""
    start = 0
    while start < len(words) and (_ENV_ASSIGN.match(words[start].text) or words[start].text == "env"):
        start += 1
    return words[start:]


def _strip_comment(line: str) -> str:
    """The line without a trailing `# comment` (a `#` inside quotes or a word is kept)."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i]
    return line


def _unquote(word: str) -> str:
    out = []
    i = 0
    while i < len(word):
        char = word[i]
        if char == "'":
            end = word.index("'", i + 1)
            out.append(word[i + 1 : end])
            i = end + 1
        elif char == '"':
            i += 1
            while i < len(word) and word[i] != '"':
                if word[i] == "\\" and i + 1 < len(word):
                    i += 1
                out.append(word[i])
                i += 1
            i += 1
        elif char == "\\" and i + 1 < len(word):
            out.append(word[i + 1])
            i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


def join_path(cwd: str, rel: str) -> str:
    """`rel` seen from the repo-relative folder `cwd`, normalised; absolute paths kept as is."""
    if rel.startswith("/"):
        return rel
    joined = posixpath.normpath(posixpath.join(cwd or ".", rel))
    return "" if joined == "." else joined
