"""Fixtures for the App's tests, loaded as a plugin (tests/conftest.py): an App key, a local fake
GitHub speaking the real wire format, settings pointing at it, and a job queue on those settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app.queue import Queue
from bot.core.settings import Settings
from tests.support.fake_github import APP_ID, INSTALLATION_ID, FakeGitHub, make_settings, rsa_private_key


@pytest.fixture(scope="session")
def app_key() -> Any:
    return rsa_private_key()


@pytest.fixture
async def fake_github(aiohttp_server: Any, app_key: Any) -> FakeGitHub:
    fake = FakeGitHub(app_id=APP_ID, public_key=app_key.public_key())
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    fake.installations["Codertocat/Hello-World"] = INSTALLATION_ID
    return fake


@pytest.fixture
def settings(fake_github: FakeGitHub, app_key: Any, tmp_path: Path) -> Settings:
    return make_settings(fake_github, app_key, tmp_path / "state")


@pytest.fixture
def queue(settings: Settings) -> Iterator[Queue]:
    q = Queue.from_settings(settings)
    yield q
    q.close()
