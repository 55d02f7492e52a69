"""Real git repositories for tests: a bare origin and a clone, with `main` and experiment branches.

Reuse from any test:

    from tests.support.git_repos import make_origin, experiment_branch, commit_on_origin, remote_refs

    origin, clone = make_origin(tmp_path, branches={"exp-a": experiment_branch("exp-a", lr=10.0)})

`origin` is a bare repository (push/fetch target, like GitHub); `clone` is a normal clone of it
on `main`, with `origin/<branch>` for every experiment branch (no local experiment branches).
Commits made here use a fixed identity, so tests never depend on the machine's git config.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from pathlib import Path

from bot.repo.branch_doc import doc_path

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test Human",
    "GIT_AUTHOR_EMAIL": "human@example.com",
    "GIT_COMMITTER_NAME": "Test Human",
    "GIT_COMMITTER_EMAIL": "human@example.com",
}

# A tiny experiment repo: pure Python (no ML dependencies), so a "run" is `python main.py`.
# It prints one "step N loss X" line per step and raises FloatingPointError when the loss
# diverges (learning rate too high), like a real NaN-loss failure.
TRAIN_PY = """\
import math


def train(config):
    loss = 1.0
    for step in range(1, config["steps"] + 1):
        loss = loss * (1.0 - config["lr"]) ** 2 + 0.01 * config["lr"] * step
        if not math.isfinite(loss) or loss > 1e6:
            raise FloatingPointError(f"Loss is NaN at step {step}")
        print(f"step {step} loss {loss:.6f}", flush=True)
    return loss
"""

MAIN_PY = """\
from src.config import DEFAULTS
from src.train import train

if __name__ == "__main__":
    train(dict(DEFAULTS))
"""


def config_py(**overrides: object) -> str:
    """`src/config.py` with a DEFAULTS dict; keyword arguments override its values."""
    values: dict[str, object] = {"lr": 0.1, "steps": 30, "batch_size": 32, "data_path": "data/train.csv"}
    values.update(overrides)
    body = "".join(f"    {key!r}: {value!r},\n" for key, value in values.items())
    return f"DEFAULTS = {{\n{body}}}\n"


EXPERIMENT_FILES: dict[str, str] = {
    "main.py": MAIN_PY,
    "src/__init__.py": "",
    "src/train.py": TRAIN_PY,
    "src/config.py": config_py(),
    "requirements.txt": "",
}


def experiment_branch(branch: str, description: str = "An experiment.", **config: object) -> dict[str, str]:
    """The files an experiment branch changes: its config overrides and its docs page."""
    files = {doc_path(branch): f"# {branch}\n\n{description}\n"}
    if config:
        files["src/config.py"] = config_py(**config)
    return files


def git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run real git in `cwd` with the test identity; raise with git's stderr on failure."""
    full_env = {**os.environ, **IDENTITY, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return proc.stdout.strip()


def write_files(root: Path, files: Mapping[str, str | None]) -> None:
    """Write files relative to `root`; a None content deletes the file."""
    for rel, content in files.items():
        path = root / rel
        if content is None:
            path.unlink(missing_ok=True)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content)


def commit_all(worktree: Path, message: str) -> str:
    git(worktree, "add", "-A")
    git(worktree, "commit", "-q", "--allow-empty", "-m", message)
    return git(worktree, "rev-parse", "HEAD")


def make_origin(
    tmp_path: Path,
    files: Mapping[str, str] | None = None,
    branches: Mapping[str, Mapping[str, str | None]] | None = None,
    *,
    name: str = "repo",
) -> tuple[Path, Path]:
    """A bare origin `<tmp>/<name>-origin.git` and a clone `<tmp>/<name>`.

    `main` holds `files` (EXPERIMENT_FILES by default). Each entry of `branches` is a branch
    made from main with those files written over it (None deletes), one commit "Experiment <b>".
    """
    origin = tmp_path / f"{name}-origin.git"
    seed = tmp_path / f"{name}-seed"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(origin))
    git(tmp_path, "init", "-q", "-b", "main", str(seed))
    write_files(seed, EXPERIMENT_FILES if files is None else files)
    commit_all(seed, "Initial experiment")
    git(seed, "remote", "add", "origin", str(origin))
    git(seed, "push", "-q", "origin", "main")
    for branch, overlay in (branches or {}).items():
        git(seed, "checkout", "-q", "-b", branch, "main")
        write_files(seed, overlay)
        commit_all(seed, f"Experiment {branch}")
        git(seed, "push", "-q", "origin", branch)
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", str(origin), str(clone))
    return origin, clone


def commit_on_origin(origin: Path, branch: str, files: Mapping[str, str | None], message: str) -> str:
    """Someone else pushes a commit to `branch` on the origin (through a scratch clone)."""
    scratch = origin.parent / f"{origin.stem}-scratch"
    if not scratch.exists():
        git(origin.parent, "clone", "-q", str(origin), str(scratch))
    git(scratch, "fetch", "-q", "origin")
    git(scratch, "checkout", "-q", "-B", branch, f"origin/{branch}")
    write_files(scratch, files)
    sha = commit_all(scratch, message)
    git(scratch, "push", "-q", "origin", f"{branch}:{branch}")
    return sha


def remote_refs(origin: Path) -> dict[str, str]:
    """Every ref of a repository and its sha, to compare before and after an operation."""
    out = git(origin, "for-each-ref", "--format=%(refname) %(objectname)")
    return dict(line.split(" ", 1) for line in out.splitlines() if line)


def isolate_git_config(monkeypatch, tmp_path: Path) -> None:
    """Hide the machine's git config (identity, signing, hooks) from the code under test."""
    empty = tmp_path / "empty-gitconfig"
    empty.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(empty))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for key in IDENTITY:
        monkeypatch.delenv(key, raising=False)
