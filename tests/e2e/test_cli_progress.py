"""Progress gaps, measured: `launch --wait` on a run that prints nothing for 14 s, through the
real command line with stderr a pipe (a CI log) — no gap between lines over 10 s."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from tests.support import silent_run

pytestmark = pytest.mark.slow
LIMIT_S = 10.0


def stderr_gaps(argv: list[str], env: dict[str, str]) -> tuple[int, list[str], list[float]]:
    """Run `argv`; the exit status, stderr's lines and the seconds between consecutive lines
    (from the start to the first, and from the last to the exit)."""
    start = time.monotonic()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stamps: list[float] = []
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            stamps.append(time.monotonic())
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read)
    reader.start()
    code = proc.wait(timeout=300)
    reader.join()
    end = time.monotonic()
    times = [start, *stamps, end]
    return code, lines, [b - a for a, b in zip(times, times[1:], strict=False)]


def test_a_silent_wait_still_reports_at_least_every_10_seconds(tmp_path):
    clone = silent_run.build(tmp_path, seconds=14)
    argv = [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", silent_run.BRANCH, "--wait"]
    code, lines, gaps = stderr_gaps(argv, dict(os.environ))
    assert code == 0, lines
    assert any(" running · " in line for line in lines), lines
    assert max(gaps[1:]) <= LIMIT_S, f"gaps {[round(g, 1) for g in gaps]} in {lines}"
    assert len(lines) >= 3


def test_quiet_waits_say_nothing(tmp_path):
    clone = silent_run.build(tmp_path, seconds=3)
    argv = [sys.executable, "-m", "bot", "launch", "--repo", str(clone), "--branch", silent_run.BRANCH]
    code, lines, _ = stderr_gaps([*argv, "--wait", "--quiet"], dict(os.environ))
    assert code == 0 and lines == []
