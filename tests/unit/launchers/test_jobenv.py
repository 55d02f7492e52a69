"""The local job's own environment (issue 10, point 9): a requirement the repo declares is
installed before its run, into an environment of the worktree's own layered on the job's
interpreter; never into the bot's. Real pip, real venv, a local wheelhouse (no network)."""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bot.core.settings import Settings
from bot.launchers import jobenv
from bot.launchers.command import CommandLauncher
from bot.launchers.local import LocalLauncher
from tests.support.experiment import wheel
from tests.unit.launchers.test_local import config_with, make_spec

PY = shlex.quote(sys.executable)
PROBE = f'{PY} -c "import sys, toyaug; print(toyaug.VERSION, toyaug.__file__, sys.prefix)"'


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    folder = tmp_path / "wheels"
    wheel(folder, "toyaug", "1.0")
    wheel(folder, "toyaug", "2.0")
    return folder


def run_job(worktree: Path, state: Path, command: str, wheelhouse: Path) -> subprocess.CompletedProcess:
    """The job's script as the local launcher composes it, run the way its supervisor does."""
    lines = jobenv.install_lines(worktree, command, state) or ""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "VIRTUAL_ENV", "PYTHONPATH"))}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheelhouse))
    return subprocess.run(["bash", "-c", lines + command], cwd=worktree, env=env, capture_output=True, text=True)


def test_a_declared_requirement_is_installed_into_the_worktrees_own_environment(tmp_path, worktree, wheelhouse):
    (worktree / "requirements.txt").write_text("# training\ntoyaug==1.0\n")
    state = tmp_path / "state"

    done = run_job(worktree, state, PROBE, wheelhouse)

    assert done.returncode == 0, done.stderr
    version, where, prefix = done.stdout.split()
    target = jobenv.env_dir(state, worktree)
    assert version == "1.0" and Path(where).is_relative_to(target)
    assert prefix == sys.prefix, "an interpreter named by its path keeps its own prefix, and sees the install"
    assert importlib.util.find_spec("toyaug") is None, "nothing was installed into the bot's environment"
    assert "installing requirements.txt" in done.stderr


def test_the_environment_sees_what_the_job_interpreter_has(tmp_path, worktree, wheelhouse):
    (worktree / "requirements.txt").write_text("toyaug\nwandb\n")  # wandb: already in the base
    done = run_job(worktree, tmp_path / "state", f'{PY} -c "import wandb, toyaug; print(wandb.__file__)"', wheelhouse)
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(sys.prefix), "the base's wandb, not a second copy"


def test_installing_happens_once_per_version_of_the_requirements(tmp_path, worktree, wheelhouse):
    state = tmp_path / "state"
    (worktree / "requirements.txt").write_text("toyaug==1.0\n")
    run_job(worktree, state, PROBE, wheelhouse)

    again = run_job(worktree, state, PROBE, wheelhouse)
    assert again.returncode == 0 and "installing" not in again.stderr

    (worktree / "requirements.txt").write_text("toyaug==2.0\n")
    changed = run_job(worktree, state, PROBE, wheelhouse)
    assert "installing" in changed.stderr and changed.stdout.split()[0] == "2.0"


def test_a_failed_install_lets_the_job_run_and_is_not_retried_for_the_same_requirements(tmp_path, worktree, wheelhouse):
    state = tmp_path / "state"
    (worktree / "requirements.txt").write_text("no-such-package-anywhere==9.9\n")
    command = f'{PY} -c "print(42)"'
    first = run_job(worktree, state, command, wheelhouse)
    assert first.returncode == 0 and first.stdout.strip() == "42"
    assert "installing what the repo declares failed; the job runs with what is installed" in first.stderr
    second = run_job(worktree, state, command, wheelhouse)
    assert "installing no" not in second.stderr and "installing requirements" not in second.stderr


def test_what_is_declared(tmp_path):
    assert jobenv.declared(tmp_path) == ([], [])
    (tmp_path / "requirements.txt").write_text("# nothing yet\n\n")
    assert jobenv.declared(tmp_path) == ([], [])
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["toyaug>=1", "numpy"]\n')
    expected = ["toyaug>=1", "numpy"] if sys.version_info >= (3, 11) else []
    assert jobenv.declared(tmp_path) == ([], expected)
    (tmp_path / "requirements.txt").write_text("torch\n")
    assert jobenv.declared(tmp_path) == (["requirements.txt"], []), "requirements.txt first"


@pytest.mark.parametrize(
    "command, expected",
    [
        ("python train.py", "python"),
        ("/opt/venv/bin/python3.11 -m src.train x=1", "/opt/venv/bin/python3.11"),
        ("CUDA_VISIBLE_DEVICES=0 python3 main.py", "python3"),
        ("torchrun --nproc-per-node 2 train.py", None),
        ("bash scripts/run.sh", None),
        ("PYTHON=/opt/venv/bin/python bash scripts/train.sh", "/opt/venv/bin/python"),
        ("OMP_NUM_THREADS=1 bash scripts/train.sh", None),
    ],
)
def test_the_interpreter_a_command_names(command, expected):
    assert jobenv.interpreter(command) == expected


def test_only_the_local_backend_without_setup_installs(settings: Settings, worktree):
    (worktree / "requirements.txt").write_text("toyaug\n")
    plain = make_spec(worktree, "python main.py")
    assert "far-env.sh" in LocalLauncher(settings, config_with()).script(plain)
    with_setup = make_spec(worktree, "python main.py", setup="pip install -e .")
    assert "far-env.sh" not in LocalLauncher(settings, config_with()).script(with_setup)
    assert "far-env.sh" not in LocalLauncher(settings, config_with(install=False)).script(plain)
    assert "far-env.sh" not in CommandLauncher(settings, config_with()).script(plain)
