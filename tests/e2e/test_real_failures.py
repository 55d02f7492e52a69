"""Failures the way real training jobs fail (issue 10), end to end through the command line:
real git with a bare origin, real local launches, a trainer that logs to real offline W&B runs.

- a run that exits 0 with an exploded loss is a failed run (`launch --wait`, `diagnose`, `fix`);
- a run killed by SIGTERM or SIGKILL, its log silent about it, is relaunched unchanged;
- an overflow in `math.exp(loss)` while the loss rises is a NaN loss;
- a run is over when its process is: a relaunch whose W&B record says failed while the job
  goes on is not taken for a failure (the loop used to push a second fix that never ran);
- runs are found wherever the job wrote them, and a job that logs to W&B is never verified
  without its W&B run;
- a requirement the fix adds is installed by the next launch, into the worktree's own environment.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from tests.support.cli import run_json
from tests.support.experiment import wheel
from tests.support.git_repos import git, make_origin, remote_refs

TRAIN = """import math, os, signal, sys, time
from pathlib import Path

from src.config import DEFAULTS

cfg = dict(DEFAULTS)
once = os.environ.get("TOY_ONCE_DIR")
first = bool(once) and not Path(once, "ran").exists()  # this branch's first run behaves otherwise
if first:
    Path(once, "ran").touch()
if cfg["batch_size"] > 64:
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 15.78 GiB total capacity)")

import wandb

run = wandb.init(project="toy", config=cfg, dir=cfg.get("wandb_dir"))
for step in range(cfg["steps"]):
    exploding = cfg["lr"] > 0.5 and cfg.get("losses")
    loss = cfg["losses"][step] if exploding else 4.6 * 0.8**step
    run.log({"train/loss": loss})
    print(f"step {step} loss {loss:.3f}", flush=True)
    if first and cfg.get("die_with") and step == 2:
        os.kill(os.getpid(), getattr(signal, cfg["die_with"]))
    if exploding and cfg.get("perplexity"):
        print(f"perplexity {math.exp(loss * 10):.1f}", flush=True)
    time.sleep(0.05)
if cfg.get("linger"):
    # the evaluation pass runs out of memory at its first try, marks the W&B run failed, and
    # the job goes on with a smaller eval batch
    print("eval: CUDA out of memory. Tried to allocate 8.00 GiB; retrying with a smaller eval batch", flush=True)
    run.finish(exit_code=1)
    time.sleep(cfg["linger"])
    print("eval done", flush=True)
else:
    run.finish()
"""

CONFIG = """DEFAULTS = {{
    "lr": {lr},
    "batch_size": {batch_size},
    "steps": {steps},
{extra}}}
"""

REPO_CONFIG = """launch:
  command: {command}
verify:
  min_steps: 5
  timeout: 60
fix:
  max_attempts: 3
"""


def config(lr: float = 0.1, batch_size: int = 32, steps: int = 6, **extra: object) -> str:
    lines = "".join(f"    {key!r}: {value!r},\n" for key, value in extra.items())
    return CONFIG.format(lr=lr, batch_size=batch_size, steps=steps, extra=lines)


def branch(name: str, doc: str, **files: str) -> dict[str, str]:
    return {f"docs/{name}.md": f"# {name}\n\n{doc}\n", **files}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("real")
    outside = tmp / "elsewhere"  # a W&B folder the job chose outside its worktree
    files = {
        "main.py": TRAIN,
        "src/__init__.py": "",
        "src/config.py": config(),
        "requirements.txt": "",
        ".gitignore": "wandb/\nlogs/\n__pycache__/\n",
        ".github/fix-and-relaunch.yml": REPO_CONFIG.format(command=f"{sys.executable} main.py"),
    }
    branches = {
        "exp-diverge": branch(
            "exp-diverge",
            "A 10x learning rate.",
            **{
                "src/config.py": config(lr=1.0, losses=[4.6, 446.0, 15.0, 14.0, 16.0, 15.5]),
            },
        ),
        "exp-perplexity": branch(
            "exp-perplexity",
            "A 10x learning rate; perplexity logged.",
            **{
                "src/config.py": config(lr=1.0, losses=[4.6, 9.0, 30.0, 120.0, 200.0, 300.0], perplexity=True),
            },
        ),
        "exp-sigterm": branch("exp-sigterm", "Preemptible.", **{"src/config.py": config(die_with="SIGTERM")}),
        "exp-sigkill": branch("exp-sigkill", "Preemptible, hard.", **{"src/config.py": config(die_with="SIGKILL")}),
        "exp-linger": branch(
            "exp-linger",
            "Bigger batches; a long evaluation.",
            **{
                "src/config.py": config(batch_size=128, steps=3, linger=4),
            },
        ),
        "exp-subdir": branch(
            "exp-subdir",
            "Run from the tools folder.",
            **{
                ".github/fix-and-relaunch.yml": REPO_CONFIG.format(command=f"cd tools && {sys.executable} ../main.py"),
                "tools/README.md": "tools\n",
            },
        ),
        "exp-savedir": branch(
            "exp-savedir",
            "Bigger batches; runs kept with the logs.",
            **{
                "src/config.py": config(batch_size=128, wandb_dir="logs/train/runs/2025-01-01_00-00-00"),
            },
        ),
        "exp-lostrun": branch(
            "exp-lostrun",
            "Bigger batches; runs kept elsewhere.",
            **{
                "src/config.py": config(batch_size=128, wandb_dir=str(outside)),
            },
        ),
        "exp-needs-lib": branch("exp-needs-lib", "Augment with toyaug.", **{"main.py": "import toyaug\n" + TRAIN}),
    }
    outside.mkdir(parents=True)
    return make_origin(tmp, files, branches)


@pytest.fixture(autouse=True)
def job_env(monkeypatch, tmp_path, repo):
    """Each test's jobs: a fresh "first run" marker, and pip pointed at a local wheelhouse."""
    once = tmp_path / "once"
    once.mkdir()
    wheelhouse = tmp_path / "wheels"
    wheel(wheelhouse, "toyaug")
    monkeypatch.setenv("TOY_ONCE_DIR", str(once))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheelhouse))


def launch(capsys, clone: Path, name: str) -> tuple[int, dict]:
    return run_json(capsys, "launch", "--repo", str(clone), "--branch", name, "--wait", "--json")


def fix(capsys, clone: Path, name: str) -> tuple[int, dict]:
    return run_json(capsys, "fix", "--repo", str(clone), "--branch", name, "--json")


def fix_commits(origin: Path, name: str) -> list[str]:
    return git(origin, "log", "--format=%s", f"main..{name}", "--grep=^Fix: ").splitlines()


# -- 1. silent divergence ---------------------------------------------------------------------------


def test_a_run_that_exits_0_with_an_exploded_loss_failed_and_is_fixed(capsys, repo):
    origin, clone = repo
    code, record = launch(capsys, clone, "exp-diverge")
    assert code == 1, "launch --wait: the run did not succeed, whatever its exit code"
    assert (record["state"], record["exit_code"]) == ("failed", 0)
    assert record["handle"]["end_reason"] == "train/loss is diverging: 4.6 → 15.5 by step 5"

    code, found = run_json(capsys, "diagnose", "--repo", str(clone), "--branch", "exp-diverge", "--json")
    assert (code, found["category"], found["run"]["state"]) == (0, "nan_loss", "failed")
    assert found["run"]["loss_problem"].startswith("train/loss is diverging")

    code, result = fix(capsys, clone, "exp-diverge")
    assert code == 0, result["comment"]
    assert (result["action"], result["category"], result["verified"]) == ("patched", "nan_loss", True)
    assert result["attempts"][0]["fixer"] == "rule:lower-lr"
    assert '"lr": 0.1,' in git(origin, "show", "exp-diverge:src/config.py")
    assert result["new_run"]["steps"] >= 5


def test_an_overflow_in_perplexity_while_the_loss_rises_is_a_nan_loss(capsys, repo):
    _origin, clone = repo
    code, record = launch(capsys, clone, "exp-perplexity")
    assert (code, record["state"]) == (1, "failed")
    code, result = fix(capsys, clone, "exp-perplexity")
    assert code == 0, result["comment"]
    assert (result["category"], result["attempts"][0]["fixer"], result["verified"]) == (
        "nan_loss",
        "rule:lower-lr",
        True,
    )
    assert result["diagnosis"]["exception"]["type"] == "OverflowError"


# -- 2. signals -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, code", [("exp-sigterm", 143), ("exp-sigkill", 137)])
def test_a_run_killed_by_a_signal_is_relaunched_unchanged(capsys, repo, name, code):
    origin, clone = repo
    exit_status, record = launch(capsys, clone, name)
    assert (exit_status, record["state"], record["exit_code"]) == (1, "failed", code)
    before = remote_refs(origin)

    status, result = fix(capsys, clone, name)

    assert status == 0, result["comment"]
    assert (result["category"], result["diagnosis"]["retryable"]) == ("infra", True)
    assert (result["action"], result["verified"]) == ("relaunched", True)
    assert "SIG" in result["diagnosis"]["summary"]
    assert remote_refs(origin) == before, "nothing to change, nothing pushed"


# -- 10. a relaunch that is not over yet ------------------------------------------------------------


def test_a_relaunch_is_over_when_its_process_is_not_when_wandb_says_failed(capsys, repo):
    origin, clone = repo
    assert launch(capsys, clone, "exp-linger")[0] == 1

    code, result = fix(capsys, clone, "exp-linger")

    assert code == 0, result["comment"]
    assert (result["action"], result["verified"]) == ("patched", True), result.get("reason")
    assert len(result["attempts"]) == 1, "the lingering job was waited for, not diagnosed as a second failure"
    assert result["new_run"]["state"] == "finished", "its process ended well: that is the run's end"
    assert fix_commits(origin, "exp-linger") == ["Fix: halve batch size 128 → 64 in src/config.py"]


# -- 7. runs wherever the job wrote them ----------------------------------------------------------


def test_a_job_that_cds_into_a_sub_folder_still_has_its_run_found(capsys, repo):
    _origin, clone = repo
    code, record = launch(capsys, clone, "exp-subdir")
    assert (code, record["state"]) == (0, "finished")
    worktree = clone / ".worktrees" / "exp-subdir"
    assert record["handle"]["wandb_dir"] == str(worktree.resolve())
    assert not (worktree / "tools" / "wandb").exists() and (worktree / "wandb").is_dir()
    code, history = run_json(capsys, "history", "--repo", str(clone), "--branch", "exp-subdir", "--json")
    rows = history["rows"]
    assert [row["train/loss"] for row in rows][-2:] == [pytest.approx(4.6 * 0.8**4), pytest.approx(4.6 * 0.8**5)]


def test_a_run_in_a_folder_the_code_chose_is_found_and_verifies_the_fix(capsys, repo):
    _origin, clone = repo
    assert launch(capsys, clone, "exp-savedir")[0] == 1
    code, result = fix(capsys, clone, "exp-savedir")
    assert code == 0, result["comment"]
    assert (result["action"], result["verified"]) == ("patched", True)
    assert result["new_run"]["steps"] >= 5, "the W&B run under logs/train/runs/<time>/wandb was read"
    worktree = clone / ".worktrees" / "exp-savedir"
    assert list((worktree / "logs" / "train" / "runs").glob("*/wandb/offline-run-*"))


def test_a_job_that_logs_to_wandb_is_not_verified_without_its_run(capsys, repo):
    origin, clone = repo
    assert launch(capsys, clone, "exp-lostrun")[0] == 1
    code, result = fix(capsys, clone, "exp-lostrun")
    assert result["action"] == "patched" and fix_commits(origin, "exp-lostrun")
    assert result["verified"] is False, "its process exited 0, but no W&B run says it learned"
    assert result["new_run"]["state"] == "finished"


# -- 9. a requirement the fix adds is installed --------------------------------------------------------


def test_a_requirement_the_fix_adds_is_installed_by_the_next_launch(capsys, repo):
    origin, clone = repo
    assert launch(capsys, clone, "exp-needs-lib")[0] == 1

    code, result = fix(capsys, clone, "exp-needs-lib")

    assert code == 0, result["comment"]
    assert (result["category"], result["attempts"][0]["fixer"]) == ("import_error", "rule:add-requirement")
    assert (result["action"], result["verified"]) == ("patched", True)
    assert "toyaug" in git(origin, "show", "exp-needs-lib:requirements.txt")
    assert importlib.util.find_spec("toyaug") is None, "installed for the job only, not into the bot's environment"
