"""The sample zoo (tests/e2e/test_pipeline.py) again, with every launch, `launch.setup` and
smoke check of the repository's code in the sandbox: the operator's FIX_AND_RELAUNCH_SANDBOX=
required, the local wheelhouse the exp-import branch installs from shown read-only, and the
service token the exp-llm-secret job leaks passed on to jobs (so its redaction is still tested).
The zoo takes minutes: marked slow (`-m "not slow"` skips it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_pipeline import *  # noqa: F403 (every zoo test and its `repo`, collected and built again here)
from tests.support.sandbox import require_sandbox

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _sandboxed(repo: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    require_sandbox()
    origin, _ = repo
    monkeypatch.setenv("FIX_AND_RELAUNCH_SANDBOX", "required")
    monkeypatch.setenv("FIX_AND_RELAUNCH_SANDBOX_PATHS", str(origin.parent / "wheelhouse"))
    monkeypatch.setenv("FIX_AND_RELAUNCH_SANDBOX_ENV", "SERVICE_TOKEN")
