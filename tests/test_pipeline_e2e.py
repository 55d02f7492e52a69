"""The fix pipeline end to end, through the command line: real git with a bare origin, real
subprocess launches, real offline W&B runs (sample repo), the real Anthropic client against a
local Messages API. Nothing of the bot is mocked."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot import sample_repo
from bot.cli import main as cli
from tests import experiment
from tests.fake_anthropic import FakeAnthropic, overloaded, tool_answer
from tests.git_repos import git, remote_refs


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return experiment.build(tmp_path_factory.mktemp("exp"))


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def launch_and_fail(capsys, clone: Path, branch: str) -> dict:
    code, out, _ = run_cli(capsys, "launch", "--repo", str(clone), "--branch", branch, "--wait", "--json")
    assert code == 1, out
    record = json.loads(out)
    assert record["state"] == "failed"
    return record


def fix(capsys, clone: Path, branch: str, *extra: str) -> tuple[int, dict]:
    code, out, err = run_cli(capsys, "fix", "--repo", str(clone), "--branch", branch, "--json", *extra)
    return code, json.loads(out)


def on_origin(origin: Path, branch: str, path: str) -> str:
    return git(origin, "show", f"{branch}:{path}")


@pytest.mark.parametrize("branch,category,fixer,path,expected", [
    ("exp-oom", "oom", "rule:lower-batch-size", "src/config.py", '"batch_size": 64,'),
    ("exp-data", "data_not_found", "rule:closest-path", "src/config.py", '"data_path": "data/train.csv",'),
    ("exp-config", "config_error", "rule:config-default", "src/config.py", '"warmup_steps": 2,'),
    ("exp-import", "import_error", "rule:add-requirement", "requirements.txt", "toyaug"),
    ("exp-localimport", "import_error", "rule:fix-local-import", "src/train.py", "from src.model import build"),
])
def test_rule_fix_is_pushed_relaunched_and_verified(capsys, repo, branch, category, fixer, path, expected):
    origin, clone = repo
    failed = launch_and_fail(capsys, clone, branch)
    before = remote_refs(origin)

    code, result = fix(capsys, clone, branch)

    assert code == 0, result.get("comment")
    assert (result["action"], result["category"], result["verified"]) == ("patched", category, True)
    assert result["attempts"][0]["fixer"] == fixer
    assert result["attempts"][0]["failed_run"] == failed["id"]
    assert expected in on_origin(origin, branch, path)
    assert result["files_changed"] == sorted([path, f"docs/{branch}.md"])
    assert git(origin, "log", "-1", "--format=%s", branch).startswith("Fix: ")
    assert "## Fixes" in on_origin(origin, branch, f"docs/{branch}.md")
    assert failed["id"] in on_origin(origin, branch, f"docs/{branch}.md")
    assert result["new_run"]["state"] in ("running", "finished")
    assert result["comment"].startswith("<!-- fix-and-relaunch:report -->\n**Fix applied:**")
    assert "Re-launching" in result["comment"] or "Verified" in result["comment"]
    after = remote_refs(origin)
    changed = {ref for ref in after if after[ref] != before.get(ref)}
    assert changed == {f"refs/heads/{branch}"}, "only the fixed branch moved"


def test_unfixable_code_error_gives_up_and_pushes_nothing(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-bug")
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-bug")

    assert code == 1
    assert (result["action"], result["category"], result["verified"]) == ("gave_up", "code_error", False)
    assert "no rule fixes" in result["reason"]
    assert result["comment"].startswith("<!-- fix-and-relaunch:report -->\n**Gave up:**")
    assert "TypeError" in result["comment"]
    assert remote_refs(origin) == before


def test_dry_run_shows_the_patch_and_changes_nothing(capsys, repo):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-dry")
    before = remote_refs(origin)

    code, result = fix(capsys, clone, "exp-dry", "--dry-run")

    assert code == 0
    assert (result["action"], result["category"]) == ("none", "import_error")
    assert "-from src.modle import build" in result["patch"]
    assert "+from src.model import build" in result["patch"]
    assert "Dry run" in result["comment"]
    assert remote_refs(origin) == before
    worktree = clone / ".worktrees" / "exp-dry"
    assert git(worktree, "status", "--porcelain", "--untracked-files=no") == ""
