"""Gaps in a waiting command's progress: `launch --wait` on a run that prints nothing for a
while, stderr as a pipe (a CI log: heartbeat lines) and as a terminal (a pty: the live line's
redraws). Prints the longest and the mean gap of each; the target is at most 10 s.

    python benchmarks/progress_gaps.py [SECONDS]
"""

from __future__ import annotations

import os
import pty
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import silent_run  # noqa: E402
from tests.support.git_repos import IDENTITY  # noqa: E402


def env(state: Path) -> dict[str, str]:
    return {**os.environ, **IDENTITY, "FIX_AND_RELAUNCH_STATE_DIR": str(state), "WANDB_MODE": "offline"}


def piped(argv: list[str], environ: dict[str, str]) -> list[float]:
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stamps = [start]
    assert proc.stderr is not None
    for _ in proc.stderr:
        stamps.append(time.monotonic())
    proc.wait()
    stamps.append(time.monotonic())
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def terminal(argv: list[str], environ: dict[str, str]) -> list[float]:
    """stderr on a pty: every write the live display makes is a moment the user sees progress."""
    leader, follower = pty.openpty()
    start = time.monotonic()
    proc = subprocess.Popen(argv, env={**environ, "TERM": "xterm"}, stdout=subprocess.DEVNULL, stderr=follower)
    os.close(follower)
    stamps = [start]
    while True:
        ready, _, _ = select.select([leader], [], [], 0.5)
        if ready:
            try:
                if not os.read(leader, 65536):
                    break
            except OSError:  # the process closed the pty
                break
            stamps.append(time.monotonic())
        elif proc.poll() is not None:
            break
    proc.wait()
    stamps.append(time.monotonic())
    return [b - a for a, b in zip(stamps, stamps[1:], strict=False)]


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    with tempfile.TemporaryDirectory() as tmp:
        clone = silent_run.build(Path(tmp), seconds)
        argv = [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", silent_run.BRANCH, "--wait"]
        os.chdir(ROOT)
        for name, measure in (("stderr a pipe (heartbeat)", piped), ("stderr a terminal (live line)", terminal)):
            gaps = measure(argv, env(Path(tmp) / f"state-{measure.__name__}"))
            print(
                f"{name:30s} run silent {seconds:.0f}s: {len(gaps) - 1} updates, longest gap {max(gaps[1:]):.2f}s, "
                f"mean {statistics.mean(gaps[1:]):.2f}s (target: at most 10s)"
            )


if __name__ == "__main__":
    main()
