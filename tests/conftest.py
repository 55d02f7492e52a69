"""Test-wide isolation: no real credentials, no user state, a fixed git identity."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.paths import REPO_ROOT, SHARED  # noqa: F401 - REPO_ROOT is read by tests

_CREDENTIALS = (
    "WANDB_API_KEY", "WANDB_BASE_URL", "WANDB_ENTITY", "WANDB_PROJECT", "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL", "GITHUB_APP_ID", "GITHUB_PRIVATE_KEY", "GITHUB_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET", "WANDB_WEBHOOK_SECRET", "GITHUB_API_URL", "GITHUB_TOKEN",
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    for name in _CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FIX_AND_RELAUNCH_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "false")
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Researcher")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "researcher@example.com")


def shared_path(*parts: str) -> Path:
    """A path under ../shared/, skipping the test when the folder is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent")
    return path


# The cluster fixtures, shared by every test module. Imported here, below _CREDENTIALS, which
# tests/ray_cluster.py reads from this module.
from tests.support.ray_cluster import ray_address  # noqa: E402,F401 - a session fixture: one Ray head
from tests.support.slurm_cluster import SlurmCluster, slurm_or_skip  # noqa: E402


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """One real single-node Slurm cluster for the whole session (see tests/slurm_cluster.py)."""
    slurm_or_skip()
    cluster = SlurmCluster.start(tmp_path_factory.mktemp("slurm"))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster, monkeypatch) -> SlurmCluster:
    """The cluster, with SLURM_CONF set for the bot; whatever a test left queued is cancelled."""
    for name, value in slurm_cluster.env.items():
        monkeypatch.setenv(name, value)
    yield slurm_cluster
    slurm_cluster.cancel_all()
