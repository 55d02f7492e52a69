"""A repo config that would crash or stall the parser is a config error (exit 2), not a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.core.errors import BadInput
from bot.repo import config as repo_config
from tests.support.git_repos import make_origin


@pytest.mark.parametrize(
    "text, message",
    [
        ("launch:\n  slurm: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("launch: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n", "nested too deeply"),
        ("# padding\n" * 40_000, "is over 256 KiB"),
    ],
    ids=["lists-5000-deep", "mappings-5000-deep", "huge"],
)
def test_a_config_the_parser_cannot_take_is_a_config_error(text, message):
    with pytest.raises(BadInput, match=message):
        repo_config.parse(text)


def test_fix_on_a_branch_with_a_deeply_nested_config_exits_2_with_one_line(tmp_path):
    nested = "launch: " + "[" * 5000 + "]" * 5000 + "\n"
    _, work = make_origin(tmp_path, branches={"exp": {".github/fix-and-relaunch.yml": nested}})
    done = subprocess.run(
        [sys.executable, "-m", "bot", "fix", "--repo", str(work), "--branch", "exp"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2, done.stderr
    assert "nested too deeply" in done.stderr and "Traceback" not in done.stderr
