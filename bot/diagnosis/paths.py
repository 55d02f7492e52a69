"""Paths are names, not signals: mask them before the rules read a line.

A folder or branch named `oom-test`, `nan_runs`, `preempted-jobs` or `data` shows up in every
library warning printed from under it; matched as text it would decide the category. The rules
see `<path>` instead (or a path's last parts, for the one rule that reads a file's name).

A path here: a URL; anything starting with `/`, `~/`, `./`, `../` or a drive (`C:\\`); a
relative path with two or more separators (`logs/train/runs`); or a file under a folder
(`data/train.csv`). One separator and no extension is not a path: `train/loss`,
`Input/output error`, `NET/IB`, `it/s` keep their meaning. System paths (`/dev/shm`, `/proc`,
`/sys`) name the machine, not the user's choices, and stay; so do native libraries' own source
files, which their errors cite (`../third_party/gloo/transport/tcp/pair.cc`).
"""

from __future__ import annotations

import re

_CHAR = r"[^\s'\"()<>\[\]{},;:|`]"  # a path character: not a space, quote, bracket, colon, …
PATH = re.compile(
    rf"[A-Za-z][A-Za-z0-9+.-]*://{_CHAR}+"  # a URL
    rf"|(?<![\w/\\.~-])(?:[A-Za-z]:[\\/]|~[\\/]|\.{{1,2}}[\\/]|[\\/]){_CHAR}*\w{_CHAR}*"  # absolute, ~, ./, drive
    rf"|(?<![\w/\\.~-])[\w.@+~-]+(?:[\\/][\w.@+~-]+){{2,}}[\\/]?"  # a/b/c
    rf"|(?<![\w/\\.~-])[\w.@+~-]+[\\/][\w@+~-]+\.[A-Za-z]\w{{0,5}}\b"  # a/b.ext
)
_SYSTEM = re.compile(r"^/(?:dev|proc|sys)/")
# A native library's own source file, as its errors cite it (`[../third_party/gloo/…/pair.cc:534]`):
# the library's name there is evidence, not a user's folder.
_NATIVE_SOURCE = re.compile(r"\.(?:c|cc|cpp|cxx|h|hpp|cu|cuh)$")
PLACEHOLDER = "<path>"


def mask_paths(text: str, keep_parts: int = 0) -> str:
    """`text` with each path replaced by `<path>`, or by its last `keep_parts` parts."""
    if "/" not in text and "\\" not in text:
        return text  # the common case, cheaply
    return PATH.sub(lambda m: _masked(m.group(0), keep_parts), text)


def _masked(path: str, keep_parts: int) -> str:
    if _SYSTEM.match(path) or _NATIVE_SOURCE.search(path):
        return path
    if keep_parts <= 0:
        return PLACEHOLDER
    parts = [p for p in re.split(r"[\\/]+", path) if p]
    return "/".join(parts[-keep_parts:]) if parts else PLACEHOLDER
