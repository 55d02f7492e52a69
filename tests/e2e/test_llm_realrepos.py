"""The LLM fixer end to end on the real-repo suite, with a scripted model: the local Messages API
answers each case with its reference fix (tests/realrepos/cases.yaml), and the test checks that
every line that fix searches for was in what the bot showed the model (so a model could have
copied it). The patch is then validated, committed, pushed, relaunched and verified by the bot,
and the pushed branch, checked out afresh, trains.

The repo config turns the rules off (`fix.rules: false`), so every case goes the LLM's way,
the cases the rules fix included: the path must hold for whatever the rules leave to the LLM.

Slow (three tiny CPU trainings a case): `pytest -m "not slow"` leaves it out, and like the suite
it takes the cases marked `ci: true` unless FIX_AND_RELAUNCH_ALL_REALREPOS=1. Needs the job
environment of `.ci/install-jobenv.sh` and ../shared/data/realrepos; skips without them.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import yaml

from bot.store.runs import StateStore
from tests.support.cli import run_json as run_cli
from tests.support.fake_anthropic import serving, tool_answer
from tests.support.git_repos import commit_on_origin, git
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

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning"),
]

CASES = load_cases()
# By default the suite's subset, less the kinds whose fix the rules' own suite already trains
# (each case trains three times): a missing key and a wrong name, where the model must be shown
# the declaring site, are what this path adds.
LLM_KINDS = {"missing_key", "wrong_name"}
CONFIG = ".github/fix-and-relaunch.yml"


@pytest.fixture
def anthropic(monkeypatch):
    with serving(monkeypatch) as fake:
        yield fake


def rules_off(origin: Path, case: Case) -> None:
    """The team turns the rules off on the experiment branch, before the run that fails."""
    config = yaml.safe_load(git(origin, "show", f"{case.branch}:{CONFIG}"))
    config["fix"]["rules"] = False
    commit_on_origin(origin, case.branch, {CONFIG: yaml.safe_dump(config, sort_keys=False)}, "LLM only")


def reference_answer(case: Case) -> dict:
    return {
        "root_cause": f"{case.kind}: {case.story}",
        "explanation": "The reference fix of the real-repo suite.",
        "description": f"reference fix for {case.id}",
        "edits": [{"path": e.path, "search": e.search, "replace": e.replace} for e in case.reference],
    }


def shown_text(body: dict) -> str:
    """Every text the request showed the model: the prompt, look-up results, repair feedback."""
    parts = []
    for message in body["messages"]:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block.get("type") == "text":
                parts.append(block["text"])
            elif block.get("type") == "tool_result":
                parts += [c.get("text", "") for c in block.get("content", [])]
    return "\n".join(parts)


def stop_runs(clone: Path) -> None:
    """End the jobs the bot left running, so the check that follows has the CPUs to itself."""
    state = StateStore.open(Path(os.environ["FIX_AND_RELAUNCH_STATE_DIR"]))
    for record in state.list_runs(repo=str(clone.resolve())):
        pgid = (record.handle or {}).get("pgid")
        if pgid:
            try:
                os.killpg(int(pgid), signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass


def _param(case: Case):
    marks = [pytest.mark.xfail(reason=case.xfail, strict=False)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_param(c) for c in CASES])
def test_scripted_model_fixes_the_real_repo_case(capsys, tmp_path, anthropic, case: Case):
    if not (selected(case) and (case.kind in LLM_KINDS or os.environ.get(ALL_VAR) == "1")):
        pytest.skip(f"not in this test's representative subset; {ALL_VAR}=1 runs every case")
    python = require_job_python()
    origin, clone = build(case, tmp_path, python)
    train_baseline(capsys, clone, case)
    rules_off(origin, case)
    git(clone, "fetch", "-q", "origin")
    code, launched = run_cli(capsys, "launch", "--repo", str(clone), "--branch", case.branch, "--wait", "--json")
    assert code == 1, f"the broken branch should fail: {launched}"
    anthropic.script(tool_answer(reference_answer(case)))

    try:
        code, result = run_cli(capsys, "fix", "--repo", str(clone), "--branch", case.branch, "--json")
    finally:
        stop_runs(clone)

    first = shown_text(anthropic.bodies[0])
    for edit in case.reference:
        for line in filter(str.strip, edit.search.splitlines()):
            assert line.strip() in first, f"{edit.path}: the model was never shown {line.strip()!r}"
    assert result["attempts"][0]["fixer"].startswith("llm:"), result.get("comment")
    assert (code, result["action"], result["verified"]) == (0, "patched", True), result.get("reason")
    changed = {f for f in result["files_changed"] if not f.startswith("docs/")}
    assert changed == {e.path for e in case.reference}
    assert len(anthropic.requests) == 1, "one request: the lines to change were in the first prompt"

    training = train_pushed(origin, case.branch, case, python, tmp_path)
    assert training.returncode == 0, training.log_tail
    assert training.trend_ok(spec(case.repo)["expect"]), (training.metric, training.series)
