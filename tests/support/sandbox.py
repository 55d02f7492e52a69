"""The sandbox tool for tests: skip without bubblewrap, except under CI (`CI=true`), where a
missing or unusable bwrap fails the suite (.ci/install-sandbox.sh installs it)."""

from __future__ import annotations

import os

import pytest

from bot.launchers.sandbox import tool

ENABLE_HINT = "the sandbox tests need bubblewrap: run .ci/install-sandbox.sh (apt-get install bubblewrap)"


def require_sandbox() -> tool.Tool:
    found = tool.check()
    if found.tool is not None:
        return found.tool
    message = f"{ENABLE_HINT} ({found.problem})"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
