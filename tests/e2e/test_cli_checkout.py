"""The command line as a new user meets it: in their clone, the failed experiment branch checked
out, the experiment just run from there (a real offline W&B run), then `fix-and-relaunch fix`
with no flags at all. Real git, real runs, the real command line in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.demo import sample_repo
from tests.support.git_repos import git

pytestmark = pytest.mark.slow
BRANCH = sample_repo.BRANCH


def user_env() -> dict[str, str]:
    """The user's shell: without the wandb-core connection an earlier test's in-process wandb left."""
    return {k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"}


def bot(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """`fix-and-relaunch ARGS` run by the user in `cwd` (stderr is not a terminal here)."""
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=cwd, env=user_env(), capture_output=True, text=True, timeout=600
    )


def user_runs_the_experiment(clone: Path) -> None:
    """What the researcher did: run the branch's training from their checkout; it crashes."""
    proc = subprocess.run(
        [sys.executable, "main.py"], cwd=clone, env=user_env(), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode != 0 and "FloatingPointError" in proc.stderr
    assert list((clone / "wandb").glob("offline-run-*")), "the run is logged offline in the checkout"


@pytest.fixture
def clone(tmp_path) -> Path:
    """The sample experiment's clone with the crashing branch checked out and its run failed."""
    work = sample_repo.build(tmp_path, python=sys.executable)
    git(work, "checkout", "-q", BRANCH)
    user_runs_the_experiment(work)
    return work


def user_state(clone: Path) -> dict[str, str]:
    return {
        "branch": git(clone, "branch", "--show-current"),
        "head": git(clone, "rev-parse", "HEAD"),
        "status": git(clone, "status", "--porcelain", "--untracked-files=all"),
        "config": (clone / "src/config.py").read_text(),
    }


def test_fix_with_no_flags_fixes_pushes_relaunches_verifies_and_fast_forwards_the_clean_checkout(clone):
    origin = clone.parent / "origin.git"
    diagnosed = bot(clone, "diagnose", "--json")
    assert diagnosed.returncode == 0, diagnosed.stderr
    failed = json.loads(diagnosed.stdout)
    assert failed["category"] == "nan_loss" and failed["config"]["branch"] == BRANCH

    fixed = bot(clone, "fix")

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "Fix applied:" in fixed.stdout and "<!--" not in fixed.stdout and "\\_" not in fixed.stdout
    assert f"your checkout of {BRANCH} at {clone.resolve()} was fast-forwarded to the fix" in fixed.stdout
    pushed = git(origin, "rev-parse", BRANCH)
    assert git(clone, "rev-parse", "HEAD") == pushed and git(clone, "status", "--porcelain") == ""
    fixed_config = (clone / "src/config.py").read_text()
    assert fixed_config == git(origin, "show", f"{BRANCH}:src/config.py") + "\n" and '"lr": 25.0' not in fixed_config
    assert "· diagnosing run" in fixed.stderr and "· run " in fixed.stderr, "progress on stderr"
    runs = json.loads(bot(clone, "runs", "--json").stdout)
    relaunched = runs[0]
    assert relaunched["branch"] == BRANCH and relaunched["state"] in ("running", "finished")
    latest = bot(clone, "diagnose")
    assert latest.returncode == 0 and f"the latest run of {BRANCH}, {relaunched['id']}, is" in latest.stdout
    older = bot(clone, "diagnose", "--run", failed["run"]["id"], "--json")
    assert json.loads(older.stdout)["category"] == "nan_loss", "an older run is reached with --run"


def test_with_a_dirty_checkout_the_fix_still_works_and_leaves_the_users_files_untouched(clone):
    origin = clone.parent / "origin.git"
    (clone / "src/train.py").write_text((clone / "src/train.py").read_text() + "# trying something\n")
    (clone / "notes.txt").write_text("my notes\n")
    git(clone, "add", "notes.txt")
    before = user_state(clone)

    fixed = bot(clone, "fix", "--json")

    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    result = json.loads(fixed.stdout)
    assert (result["action"], result["verified"]) == ("patched", True)
    assert result["commits"][-1] == git(origin, "rev-parse", BRANCH)
    assert user_state(clone) == before, "the user's branch, HEAD, index and files are as they were"
    assert result["checkout"] == {
        "sync": "left",
        "path": str(clone.resolve()),
        "command": f"git merge --ff-only origin/{BRANCH}",
    }
    assert "note: your checkout of exp-high-lr" in fixed.stderr and "the fix is made from the committed code" in (
        fixed.stderr
    ), "the user is told the fix is made on the committed code"
    text = bot(clone, "runs")
    assert text.returncode == 0 and text.stdout.splitlines()[0].split() == [
        "id", "branch", "state", "steps", "started", "commit", "backend",
    ]  # fmt: skip
    took = subprocess.run(["git", "merge", "--ff-only", f"origin/{BRANCH}"], cwd=clone, capture_output=True, text=True)
    assert took.returncode == 0, took.stderr  # the command the bot printed takes the fix, edits kept
    assert "# trying something" in (clone / "src/train.py").read_text()


def test_launch_with_no_flags_uses_the_checked_out_branch_and_waits_with_progress(clone):
    launched = bot(clone, "launch", "--wait")
    assert launched.returncode == 1, launched.stderr  # the branch still crashes
    assert "launched run" in launched.stdout and f"of {BRANCH} (local)" in launched.stdout
    assert "· run " in launched.stderr
    quiet = bot(clone, "launch", "--wait", "--quiet", "--json")
    assert quiet.returncode == 1 and quiet.stderr == "" and json.loads(quiet.stdout)["state"] == "failed"
    fixed_again = bot(clone, "fix", "--dry-run", "--quiet")
    assert fixed_again.returncode == 0 and "Dry run" in fixed_again.stdout


def test_a_detached_checkout_needs_a_branch_named(clone):
    git(clone, "checkout", "-q", "--detach")
    result = bot(clone, "fix")
    assert result.returncode == 2 and "is not on a branch" in result.stderr and "--branch" in result.stderr
