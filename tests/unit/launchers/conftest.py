"""Fixtures of the launcher tests: settings with a private state dir, and a worktree folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.core.settings import Settings
from tests.support.launchers import make_worktree


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state")


@pytest.fixture
def worktree(tmp_path: Path) -> Path:
    return make_worktree(tmp_path)
