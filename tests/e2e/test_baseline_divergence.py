"""A finite divergence told by comparing with the base branch's run (issue 10), end to end through
the command line: real git with a bare origin, real local launches, a trainer logging to real
offline W&B runs.

A learning rate ten times too high makes the loss overshoot before its first log and then fall:
900 → 60 → … → 23.5, never NaN, never above twice its first value, and the job exits 0. On its
own it learns. Beside main's run (4.6 → 0.77 at the same steps) it is thirty times worse: a
failed run for `launch --wait`, `diagnose` and `fix`, diagnosed `nan_loss` (a divergence), fixed
by lowering the learning rate, and the fix verified against main's run too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.support.cli import run_json
from tests.support.git_repos import git, make_origin

TRAIN = """import time

import wandb

from src.config import DEFAULTS

cfg = dict(DEFAULTS)
run = wandb.init(project="toy", config=cfg)
for step in range(cfg["steps"]):
    # too high a learning rate overshoots before the first log, then settles far above main
    loss = cfg["overshoot"][step] if cfg["lr"] > 0.5 else 4.6 * 0.7**step
    run.log({"train/loss": loss})
    print(f"step {step} loss {loss:.3f}", flush=True)
    time.sleep(0.05)
run.finish()
"""

CONFIG = """DEFAULTS = {{
    "lr": {lr},
    "steps": 6,
    "overshoot": [900.0, 60.0, 30.0, 25.0, 24.0, 23.5],
}}
"""

REPO_CONFIG = f"""launch:
  command: {sys.executable} main.py
verify:
  min_steps: 5
  timeout: 60
fix:
  max_attempts: 2
"""


@pytest.fixture
def repo(tmp_path):
    files = {
        "main.py": TRAIN,
        "src/__init__.py": "",
        "src/config.py": CONFIG.format(lr=0.1),
        ".gitignore": "wandb/\n__pycache__/\n",
        ".github/fix-and-relaunch.yml": REPO_CONFIG,
    }
    branches = {"exp-hot": {"src/config.py": CONFIG.format(lr=1.0), "docs/exp-hot.md": "# exp-hot\n\nA 10x lr.\n"}}
    return make_origin(tmp_path, files, branches)


def launch(capsys, clone: Path, branch: str) -> tuple[int, dict]:
    return run_json(capsys, "launch", "--repo", str(clone), "--branch", branch, "--wait", "--json")


def test_a_finite_loss_far_worse_than_mains_run_failed_and_is_fixed(capsys, repo):
    origin, clone = repo
    # No baseline yet: judged on its own, the falling loss learns (today's verdict, unchanged).
    code, alone = launch(capsys, clone, "exp-hot")
    assert (code, alone["state"], alone["exit_code"]) == (0, "finished", 0)

    code, main = launch(capsys, clone, "main")
    assert (code, main["state"]) == (0, "finished")

    code, record = launch(capsys, clone, "exp-hot")
    assert code == 1, "launch --wait: far worse than main's run at the same step, whatever its exit code"
    assert (record["state"], record["exit_code"]) == ("failed", 0)
    assert record["handle"]["end_reason"] == f"train/loss 23.5 at step 5 against 0.773 on main's run {main['id']}"

    code, found = run_json(capsys, "diagnose", "--repo", str(clone), "--branch", "exp-hot", "--json")
    assert (code, found["category"], found["run"]["state"]) == (0, "nan_loss", "failed")
    assert found["run"]["id"] == record["id"]
    assert f"against 0.773 on main's run {main['id']}" in found["run"]["loss_problem"]
    assert any(f"main's run {main['id']}" in line for line in found["evidence"])
    assert f"train/loss 23.5 at step 5 against 0.773 on main's run {main['id']}" in found["summary"]

    code, result = run_json(capsys, "fix", "--repo", str(clone), "--branch", "exp-hot", "--json")
    assert code == 0, result["comment"]
    assert (result["action"], result["category"], result["verified"]) == ("patched", "nan_loss", True)
    assert result["attempts"][0]["fixer"] == "rule:lower-lr"
    assert len(result["attempts"]) == 1, "lr 0.1 learns like main: verified against it at the first try"
    assert '"lr": 0.1,' in git(origin, "show", "exp-hot:src/config.py")
    assert result["new_run"]["steps"] >= 5
    assert f"main's run {main['id']}" in result["comment"], "the PR is told what the run was compared with"
