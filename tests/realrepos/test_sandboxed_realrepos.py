"""The real-repo suite again, with every launch of the repositories' code in the sandbox (the
operator's FIX_AND_RELAUNCH_SANDBOX=required): real training code, its job environment shown
read-only, a missing requirement installed into the worktree's environment from inside it.

One case per repository by default (each case is three CPU trainings); all of them with
SANDBOXED_REALREPOS=all. Slow, like the suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realrepos import test_realrepos as suite
from tests.support.realrepos import Case
from tests.support.sandbox import require_sandbox

pytestmark = pytest.mark.slow

SAMPLE = ("makemore-missing-argparse-arg", "cleanrl-missing-requirement", "hydra-missing-key", "timm-data-path-in-yaml")


def _chosen() -> list[Case]:
    every = os.environ.get("SANDBOXED_REALREPOS") == "all"
    return [case for case in suite.CASES if every or case.id in SAMPLE]


@pytest.mark.parametrize("case", [suite._param(c) for c in _chosen()])
def test_real_repo_breakage_is_fixed_and_trains_in_the_sandbox(capsys, tmp_path, monkeypatch, case: Case):
    require_sandbox()
    monkeypatch.setenv("FIX_AND_RELAUNCH_SANDBOX", "required")
    suite.check_case(capsys, tmp_path, case)
    logs = list(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"]).glob("runs/*/output.log"))
    assert len(logs) >= 2, "the failed run and the relaunch"
    for log in logs:
        assert log.read_text().startswith("fix-and-relaunch: running in the sandbox"), log
