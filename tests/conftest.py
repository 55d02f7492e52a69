"""Test-wide isolation: no real credentials, no user state, a fixed git identity.

Shared fixtures come in as plugins: the session-wide Ray head and Slurm cluster, and the App's
fake GitHub with settings and a queue on it.
"""

from __future__ import annotations

import pytest

from tests.support.env import CREDENTIALS

pytest_plugins = ["tests.support.ray_cluster", "tests.support.slurm_cluster", "tests.support.github_fixtures"]


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch, tmp_path_factory):
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("FIX_AND_RELAUNCH_STATE_DIR", str(home / "state"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DISABLE_GIT", "false")
    # Set by wandb once a test used it in-process (the API, Launch): a job started later would
    # log through this process's wandb-core and lose its last records.
    monkeypatch.delenv("WANDB_SERVICE", raising=False)
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "Test Researcher")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "researcher@example.com")
