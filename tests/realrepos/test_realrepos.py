"""The real-repo suite: real training repositories broken on an experiment branch the way a
researcher would, fixed by the bot rules-only (no LLM key), judged like the sample zoo and then
some: launch (fails) → `fix --json` → the pushed branch, checked out and run independently,
trains (its metric moves the right way).

Slow (each case is three tiny CPU trainings, 1-3 minutes on 2 cores; one more, main's, for a
case with `baseline: true`): `pytest -m "not slow"`
leaves it out, and a run takes the cases marked `ci: true` (one of each repository and each kind
of breakage) unless FIX_AND_RELAUNCH_ALL_REALREPOS=1 asks for all. Needs the job environment of
`.ci/install-jobenv.sh` and ../shared/data/realrepos; skips without them (fails under CI=true
without the job environment).
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from bot.store.runs import StateStore
from tests.support.cli import run_json as run_cli
from tests.support.git_repos import git
from tests.support.realrepos import (
    ALL_VAR,
    Case,
    build,
    load_cases,
    require_job_python,
    selected,
    spec,
    train_baseline,
    train_pushed,
)

pytestmark = pytest.mark.slow

CASES = load_cases()


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=case.xfail, strict=False)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


def stop_runs(clone: Path) -> None:
    """End the jobs the bot left running (a relaunch watched for its first steps only), so the
    check that follows has the CPUs to itself."""
    state = StateStore.open(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"]))
    for record in state.list_runs(repo=str(clone.resolve())):
        pgid = (record.handle or {}).get("pgid")
        if pgid:
            try:
                os.killpg(int(pgid), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_real_repo_breakage_is_fixed_and_trains(capsys, tmp_path, case: Case):
    if not selected(case):
        pytest.skip(f"not in the representative subset; {ALL_VAR}=1 runs every case")
    check_case(capsys, tmp_path, case)


def check_case(capsys, tmp_path: Path, case: Case) -> None:
    """Launch the broken branch (it fails), `fix --json` it, then train what was pushed. A case
    told by a baseline has main trained first."""
    python = require_job_python()
    origin, clone = build(case, tmp_path, python)
    train_baseline(capsys, clone, case)

    code, launched = run_cli(capsys, "launch", "--repo", str(clone), "--branch", case.branch, "--wait", "--json")
    assert code == 1, f"the broken branch should fail: {launched}"

    try:
        code, result = run_cli(capsys, "fix", "--repo", str(clone), "--branch", case.branch, "--json")
    finally:
        stop_runs(clone)
    assert result["category"] in case.expect.categories, result.get("comment")
    assert result["attempts"][0]["fixer"] == case.expect.fixer, result.get("comment")
    assert (code, result["action"], result["verified"]) == (0, "patched", True), result.get("reason")
    changed = {f for f in result["files_changed"] if not f.startswith("docs/")}
    assert changed == set(case.expect.changed)
    for expected in case.expect.contains:
        path, text = expected.split(": ", 1)
        assert text in git(origin, "show", f"{case.branch}:{path}"), expected

    training = train_pushed(origin, case.branch, case, python, tmp_path)
    assert training.returncode == 0, training.log_tail
    assert training.trend_ok(spec(case.repo)["expect"]), (training.metric, training.source, training.series)
