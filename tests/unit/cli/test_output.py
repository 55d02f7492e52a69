"""What `runs` prints: the columns in a useful order and times a human reads."""

from __future__ import annotations

from datetime import datetime

from bot.cli.output import human_time, runs_table
from bot.runs.model import RunInfo

NOW = 1_800_000_000.0


def test_runs_are_listed_with_useful_columns_and_human_times():
    runs = [
        RunInfo(
            "r2", "running", branch="exp-a", commit="0123456789abcdef", created_at=NOW - 95, steps=12, record_id="r2"
        ),
        RunInfo(
            "r1", "failed", branch="exp-a", commit="fedcba9876543210", created_at=NOW - 7200, steps=91, exit_code=1
        ),
    ]
    lines = runs_table(runs, {"r2": "slurm"}, now=NOW).splitlines()
    assert lines[0].split() == ["id", "branch", "state", "steps", "started", "commit", "backend"]
    assert lines[1].split() == ["r2", "exp-a", "running", "12", "1", "min", "ago", "01234567", "slurm"]
    assert lines[2].split() == ["r1", "exp-a", "failed", "(1)", "91", "2", "h", "ago", "fedcba98", "—"]
    assert runs_table([], {}) == "(no runs)"


def test_human_time():
    assert human_time(None, NOW) == ""
    assert human_time(NOW - 5, NOW) == "5s ago"
    assert human_time(NOW - 600, NOW) == "10 min ago"
    assert human_time(NOW - 3 * 3600, NOW) == "3 h ago"
    old = NOW - 3 * 86400
    assert human_time(old, NOW) == datetime.fromtimestamp(old).strftime("%Y-%m-%d %H:%M")
