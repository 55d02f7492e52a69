"""A small experiment repository like the ones the bot looks after, for `demo` and the tests.

`main` trains a toy model (gradient descent on a quadratic, logged to W&B); the
experiment branch raises the learning rate a hundredfold, so its loss overflows and
the run crashes with a FloatingPointError after a few dozen steps.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bot.repo.branch_doc import doc_path
from bot.repo.git import git

MAIN_PY = '''"""Train a toy model and log it to W&B."""
import subprocess

import wandb

from src.config import DEFAULTS
from src.train import train


def current_branch():
    out = subprocess.run(["git", "rev-parse", "--abbrev-ref", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or None


if __name__ == "__main__":
    config = dict(DEFAULTS, branch=current_branch())
    run = wandb.init(project=config["project"], config=config)
    train(run, config)
    run.finish()
'''

CONFIG_PY = '''"""Hyper-parameters of the toy model."""

DEFAULTS = {{
    "project": "fix-and-relaunch-demo",
    "lr": {lr},  # learning rate
    "steps": 150,
    "batch_size": 32,
    "step_time": 0.02,  # seconds per step, so a run is slow enough to watch
}}
'''

TRAIN_PY = '''"""Gradient descent on (w - 3)^2: the smallest model whose loss can diverge."""
import math
import time


def train(run, config):
    w = 0.0
    for step in range(config["steps"]):
        error = w - 3.0
        loss = error * error
        if not math.isfinite(loss):
            raise FloatingPointError(f"Loss is {{loss}} at step {{step}}")
        run.log({{"loss": loss, "lr": config["lr"]}}, step=step)
        w -= config["lr"] * 2 * error
        time.sleep(config["step_time"])
'''

REPO_CONFIG = """launch:
  backend: local
  command: {python} main.py
verify:
  min_steps: 20
  timeout: 120
fix:
  max_attempts: 3
"""

DOC = """# {branch}

{what}
"""

BRANCH = "exp-high-lr"


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def build(root: Path, *, python: str = sys.executable, branch: str = BRANCH, lr: str = "25.0") -> Path:
    """Create the sample experiment repo at `root/work`, with a bare origin at `root/origin.git`.

    Returns the working clone. `main` has a sane learning rate; `branch` raises it to `lr`.
    """
    origin, work = root / "origin.git", root / "work"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "-b", "main", str(origin))
    git(root, "clone", "-q", str(origin), str(work))
    _write(
        work,
        {
            "main.py": MAIN_PY,
            "src/__init__.py": "",
            "src/config.py": CONFIG_PY.format(lr="0.25"),
            "src/train.py": TRAIN_PY.format(),
            "requirements.txt": "wandb\n",
            ".gitignore": "wandb/\n__pycache__/\n",
            ".github/fix-and-relaunch.yml": REPO_CONFIG.format(python=python),
        },
    )
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "Baseline toy model")
    git(work, "push", "-q", "-u", "origin", "main")
    git(work, "checkout", "-q", "-b", branch)
    _write(
        work,
        {
            "src/config.py": CONFIG_PY.format(lr=lr),
            doc_path(branch): DOC.format(branch=branch, what=f"Does a {lr} learning rate train faster?"),
        },
    )
    git(work, "commit", "-q", "-am", f"Experiment: learning rate {lr}")
    git(work, "add", doc_path(branch))
    git(work, "commit", "-q", "-m", f"Describe {branch}")
    git(work, "push", "-q", "-u", "origin", branch)
    git(work, "checkout", "-q", "main")
    return work
