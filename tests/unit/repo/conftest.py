"""Every repo test runs against real git, with the machine's git config out of the way."""

from __future__ import annotations

import pytest

from tests.support.git_repos import experiment_branch, isolate_git_config, make_origin


@pytest.fixture(autouse=True)
def _no_machine_git_config(monkeypatch, tmp_path):
    isolate_git_config(monkeypatch, tmp_path)


@pytest.fixture
def repo(tmp_path):
    """(origin, clone) with two experiment branches: exp-a (lr too high) and team/exp-b."""
    return make_origin(
        tmp_path,
        branches={
            "exp-a": experiment_branch("exp-a", lr=10.0),
            "team/exp-b": experiment_branch("team/exp-b", lr=0.05),
        },
    )
