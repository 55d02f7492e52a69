"""A repository whose run says nothing for a while: for measuring the gaps in a wait's progress."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.support.git_repos import make_origin

BRANCH = "exp-silent"


def build(tmp: Path, seconds: float) -> Path:
    """(clone) with branch `exp-silent`, whose run prints nothing for `seconds`, then succeeds."""
    files = {
        "main.py": f"import time\ntime.sleep({seconds})\n",
        ".github/fix-and-relaunch.yml": f"launch:\n  command: {sys.executable} main.py\n",
    }
    _, clone = make_origin(tmp, files, {BRANCH: {"notes.md": "silent\n"}})
    return clone
