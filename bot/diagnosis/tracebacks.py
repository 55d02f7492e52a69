"""Find Python tracebacks (chained, worker, torchrun summaries, JAX/TF errors) in log lines."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

# Prefixes added by launchers and issue threads: `[rank0]: `, `[default3]:`, srun's `3: `,
# a pasted line number `[1745] `, markdown quotes and bold markers.
_PREFIX = re.compile(r"^(?:\s*(?:\[(?:rank|default)\d+\]:|\[\d+\](?= )|\d{1,4}:(?= )|>(?= )))+ ?")
_FENCE = re.compile(r"^\s*```")
# A line inside a box drawn by rich (tyro's and typer's errors): `│ text │`.
_BOXED = re.compile(r"^\s*│ ?(?P<inner>.*?)\s*│\s*$")
_FLAT_FRAME = re.compile(r"\s+(?=File \"[^\"]+\", line \d+)")
# A record glued after a progress bar that did not end its line: `…it/s][rank5]:[E602 …`.
_GLUED = re.compile(r"(?<=\S)(?=\[rank\d+\]:|\[[EWIF](?:\d{4} [\d:.]+)? ?\w+\.(?:cpp|cc|h):\d+\])")
_IPY_ARROW = re.compile(r"^\s*-+>\s*\d+\s")
_IPY_CODE = re.compile(r"^\s*(?:-+>\s*)?\d+\s")
_PROGRESS = re.compile(r"\d+%\|")
_BOLD_START = re.compile(r"^(\s*)\*\*(?!\*)")
_BOLD_END = re.compile(r"(?<!\*)\*\*\s*$")
_RULER = re.compile(r"^\s*[=\-]{5,}\s*$")
_OPEN_FILE = re.compile(r"^\s*File \"[^\"]*$")
_CLOSE_FILE = re.compile(r"^[^\"\s]*\", line \d+")
_INLINE_CODE = re.compile(r"^(?P<frame>(?P<indent>\s*)File \"[^\"]+\", line \d+, in [<>\w.]+)\s{2,}(?P<code>\S.*)$")

HEADER = re.compile(r"Traceback \(most recent call last\)")
_WORKER_HEADER = re.compile(
    r"^\s*Original Traceback \(most recent call last\)|RemoteTraceback|"
    r"-- Process \d+ terminated with the following error"
)
FRAME = re.compile(r"^(?P<indent>\s*)File \"(?P<file>[^\"]+)\", line (?P<line>\d+)(?:, in (?P<func>.+?))?\s*$")
_IPY_FRAME = re.compile(r"^(?P<indent>\s*)File (?P<file>\S.*?):(?P<line>\d+), in (?P<func>[\w.<>]+)")
_CHAIN = re.compile(
    r"(?P<context>During handling of the above exception)|"
    r"(?P<cause>The above exception was the direct cause)"
)
_EXC_NAME = (
    r"(?:[A-Za-z_]\w*\.)*(?:_?[A-Z]\w*(?:Error|Exception|Exit|Interrupt|Fault|Failure|Timeout|Warning)"
    r"|Exception|KeyboardInterrupt|StopIteration|SystemExit|GeneratorExit)"
)
EXC = re.compile(rf"^\s*(?P<type>{_EXC_NAME})(?::\s?(?P<msg>.*))?$")
_ORPHAN = re.compile(rf"^\s*(?P<type>{_EXC_NAME})(?::\s?(?P<msg>.*))$")
# After a traceback's frames, any unindented `pkg.Name: message` is the exception (VersionConflict, ServiceUnavailable).
_AFTER_FRAMES = re.compile(r"^(?P<type>(?:[A-Za-z_]\w*\.)*[A-Z]\w*)(?::\s?(?P<msg>.*))?$")
_FLAT_EXC = re.compile(rf"(?<![\w.])(?P<type>{_EXC_NAME}): (?P<msg>.*)$")
_ROOT_CAUSE = re.compile(r"Root Cause \(first observed failure\)")
_TR_KEY = re.compile(r"^\s*(?P<key>time|host|rank|exitcode|error_file|traceback)\s*:\s?(?P<val>.*)$")
_TF_NAMES = re.compile(
    r"^(?:tensorflow\.|tf\.)|errors_impl|^(?:ResourceExhausted|InvalidArgument|FailedPrecondition|"
    r"NotFound|Internal|Unknown|OutOfRange|Aborted|Unavailable|DeadlineExceeded)Error$"
)


@dataclass
class ParsedTraceback:
    exc_type: str | None
    message: str
    frames: list[tuple[str, int, str, str]] = field(default_factory=list)  # (file, line, function, code)
    kind: str = "python"  # python | worker | torchrun | jax | tf
    chained: str | None = None  # "cause" / "context": how it links to the previous one
    details: dict = field(default_factory=dict)  # torchrun: exitcode, error_file, rank, host, traceback

    @property
    def text(self) -> str:
        """`Type: message`, the form rules match against."""
        return f"{self.exc_type}: {self.message}" if self.exc_type else self.message


def normalize_lines(lines: list[str]) -> list[str]:
    """Strip rank/markdown decoration and unflatten tracebacks pasted onto one or wrapped lines."""
    out: list[str] = []
    for line in lines:
        if _FENCE.match(line):
            out.append("")
            continue
        pieces = [_unbox(_unbold(_PREFIX.sub("", p))) for p in _GLUED.split(line.rstrip("\n"))]
        out += pieces[:-1]
        line = pieces[-1]
        if out and _OPEN_FILE.match(out[-1]) and _CLOSE_FILE.match(line):
            line = out.pop() + line  # a frame's path wrapped onto the next line
        if 'File "' in line and HEADER.search(line):
            out.extend(_unflatten(line))
        else:
            out.append(line)
    return _split_inline_code(out)


def _split_inline_code(lines: list[str]) -> list[str]:
    """`File "x", line 3, in f    code` -> frame line + code line (+ exception line when last)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        m = _INLINE_CODE.match(line)
        if not m:
            out.append(line)
            continue
        out += [m["frame"], m["indent"] + "    " + m["code"]]
        last = i + 1 >= len(lines) or not FRAME.match(lines[i + 1])
        tail = _FLAT_EXC.search(m["code"]) if last else None
        if tail:
            out[-1:] = [m["indent"] + "    " + m["code"][: tail.start()].strip(), f"{tail['type']}: {tail['msg']}"]
    return out


def _unbox(line: str) -> str:
    boxed = _BOXED.match(line)
    return boxed["inner"] if boxed else line


def _unbold(line: str) -> str:
    """Drop markdown bold markers that an issue thread wrapped around log lines."""
    return _BOLD_END.sub("", _BOLD_START.sub(r"\1", line))


def _unflatten(line: str) -> list[str]:
    parts = _FLAT_FRAME.split(line)
    tail = _FLAT_EXC.search(parts[-1])
    if tail and not EXC.match(parts[-1]):
        parts[-1:] = [parts[-1][: tail.start()], f"{tail['type']}: {tail['msg']}"]
    return parts


def frame_line_indices(lines: list[str]) -> set[int]:
    """Indices of frame lines and the source lines under them (code, not log output)."""
    skip: set[int] = set()
    if any(_IPY_ARROW.match(line) for line in lines):  # IPython prints numbered source lines
        skip.update(i for i, line in enumerate(lines) if _IPY_CODE.match(line))
    for i, line in enumerate(lines):
        m = FRAME.match(line) or _IPY_FRAME.match(line)
        if not m:
            continue
        skip.add(i)
        if i + 1 < len(lines) and _is_code(lines[i + 1], len(m["indent"])):
            skip.add(i + 1)
    return skip


def _is_code(line: str, frame_indent: int) -> bool:
    indent = len(line) - len(line.lstrip())
    return bool(line.strip()) and indent > frame_indent and not FRAME.match(line)


def parse_tracebacks(lines: list[str]) -> list[ParsedTraceback]:
    """All tracebacks in the lines, in log order (outer/earlier first)."""
    return parse_normalized(normalize_lines(list(lines)))


def parse_normalized(lines: list[str]) -> list[ParsedTraceback]:
    """parse_tracebacks for lines already passed through normalize_lines."""
    return _Parser(lines).run()


class _Parser:
    def __init__(self, lines: list[str]):
        self.lines = lines
        self.out: list[ParsedTraceback] = []
        self.cur: ParsedTraceback | None = None
        self.chain: str | None = None
        self.worker_next = False

    def run(self) -> list[ParsedTraceback]:
        i = 0
        while i < len(self.lines):
            i = self.step(i)
        self.close()
        return self.out

    def step(self, i: int) -> int:
        line = self.lines[i]
        if _ROOT_CAUSE.search(line):
            self.close()
            return self.torchrun(i + 1)
        if _WORKER_HEADER.search(line):
            self.worker_next = True
        if HEADER.search(line):
            self.open()
            return i + 1
        frame = FRAME.match(line) or _IPY_FRAME.match(line)
        if frame:
            return self.frame(frame, i)
        chain = _CHAIN.search(line)
        if chain:
            self.close()
            self.chain = "cause" if chain["cause"] else "context"
            return i + 1
        exc = (
            (EXC.match(line) or (_AFTER_FRAMES.match(line) if self.cur.frames else None))
            if self.cur
            else _ORPHAN.match(line)
        )
        if exc and not (self.cur is None and exc["type"].endswith("Warning")):
            return self.exception(exc, i)
        return i + 1

    def open(self) -> ParsedTraceback:
        self.close()
        self.cur = ParsedTraceback(None, "", kind="worker" if self.worker_next else "python", chained=self.chain)
        self.worker_next = False
        self.chain = None
        return self.cur

    def close(self) -> None:
        if self.cur and (self.cur.frames or self.cur.exc_type):
            self.out.append(self.cur)
        self.cur = None

    def frame(self, m: re.Match, i: int) -> int:
        cur = self.cur or self.open()
        code = ""
        nxt = self.lines[i + 1] if i + 1 < len(self.lines) else ""
        if _is_code(nxt, len(m["indent"])) and not (EXC.match(nxt) and not _looks_like_code(nxt)):
            code = nxt.strip()
            i += 1
        cur.frames.append((m["file"], int(m["line"]), (m["func"] or "").strip(), code))
        return i + 1

    def exception(self, m: re.Match, i: int) -> int:
        cur = self.cur or self.open()
        cur.exc_type = m["type"]
        message = [(m["msg"] or "").strip().strip('"')]
        # A heading-like message ("Graph execution error:") continues on the following lines.
        heading = not message[0] or message[0].endswith(":")
        i += 1
        while i < len(self.lines) and len(message) < 6:
            line = self.lines[i]
            if not line.strip() and heading and len(message) == 1:
                i += 1
                continue
            if (
                not line.strip()
                or FRAME.match(line)
                or HEADER.search(line)
                or _CHAIN.search(line)
                or _ROOT_CAUSE.search(line)
                or EXC.match(line)
                or _PROGRESS.search(line)
                or _RULER.match(line)
            ):
                break
            if not (heading or line[:1].isspace()):
                break
            message.append(line.strip())
            i += 1
        cur.message = "\n".join(x for x in message if x)
        cur.kind = _kind(cur)
        self.close()
        return i

    def torchrun(self, i: int) -> int:
        details: dict = {}
        tb_lines: list[str] = []
        while i < len(self.lines):
            line = self.lines[i]
            if line.strip().startswith("====") or (details and re.match(r"^\s*\[\d+\]:", line)):
                break
            key = _TR_KEY.match(line)
            if key and not tb_lines:
                details[key["key"]] = key["val"].strip()
            elif "traceback" in details:
                tb_lines.append(line)
            i += 1
        self.out.append(_torchrun_record(details, tb_lines))
        return i


def _torchrun_record(details: dict, tb_lines: list[str]) -> ParsedTraceback:
    first = details.get("traceback", "")
    nested = (
        _Parser(([first] if HEADER.search(first) else []) + tb_lines).run() if tb_lines or HEADER.search(first) else []
    )
    inner = next((t for t in reversed(nested) if t.exc_type), None)
    if inner:
        return ParsedTraceback(inner.exc_type, inner.message, inner.frames, "torchrun", details=details)
    if not details:
        return ParsedTraceback(
            "ChildFailedError", "a worker process failed (no root-cause details in the log)", [], "torchrun"
        )
    exitcode = details.get("exitcode", "?")
    message = f"rank {details.get('rank', '?')} failed with exitcode {exitcode}"
    if first and "To enable traceback" not in first:
        message += f": {first}"
    return ParsedTraceback("ChildFailedError", message, [], "torchrun", details=details)


def _looks_like_code(line: str) -> bool:
    return bool(re.search(r"[=(]|\braise\b|\breturn\b", line.split(":", 1)[0]))


def _kind(tb: ParsedTraceback) -> str:
    if tb.kind == "worker":
        return "worker"
    name = tb.exc_type or ""
    if re.search(r"(?:^|\.)jax|Xla|XlaRuntimeError", name):
        return "jax"
    if _TF_NAMES.search(name):
        return "tf"
    return tb.kind


_LIBRARY = re.compile(
    r"(?i)site-packages|dist-packages|[/\\]lib[/\\]python[\d.]*[/\\]|^<frozen|^<string>|"
    r"[/\\]lib[/\\][^/\\]+\.py$|importlib[/\\]_bootstrap|\.egg[/\\]|[/\\]bin[/\\][^/\\.]+$"
)


def is_library_file(file: str) -> bool:
    """An installed package's or the standard library's file, not the user's code."""
    return bool(_LIBRARY.search(file))


def find_location(tracebacks: list[ParsedTraceback], repo_root: Path | None = None) -> dict | None:
    """The innermost frame in the user's code, trying the given tracebacks in order."""
    for root in (repo_root, None) if repo_root else (None,):  # the repo's own files first
        for tb in tracebacks:
            for file, line, func, _code in reversed(tb.frames):
                rel = _in_repo(file, root) if root else (None if _LIBRARY.search(file) else file)
                if rel:
                    return {"file": rel, "line": line, "function": func}
    return None


def _in_repo(file: str, root: Path) -> str | None:
    """`file` relative to `root` when it is under root or a relative path that exists there.

    A log from another machine names the same checkout under another absolute path, so an
    absolute non-library path also counts when its longest suffix exists under root.
    """
    posix = file.replace("\\", "/")
    path = PurePosixPath(posix)
    for base in {str(root.absolute()), str(root.resolve())}:
        base = base.replace("\\", "/").rstrip("/")
        if posix.startswith(base + "/"):
            return posix[len(base) + 1 :]
    if not path.is_absolute() and not re.match(r"^[A-Za-z]:/", posix):
        return str(path) if (root / path).is_file() else None
    if _LIBRARY.search(file):
        return None
    parts = [p for p in path.parts if p not in ("/", "")]
    if parts and re.match(r"^[A-Za-z]:$", parts[0]):
        parts = parts[1:]
    for k in range(1, len(parts)):
        suffix = PurePosixPath(*parts[k:])
        if (root / suffix).is_file():
            return str(suffix)
    return None
