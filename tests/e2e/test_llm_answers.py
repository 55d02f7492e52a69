"""The LLM's answers other than a patch, and its look-ups, end to end through `fix --json`:
real git, real launches and offline W&B runs, the real Anthropic client against the local
Messages API. A "relaunch unchanged" answer relaunches without a commit; "no safe fix" gives up
with what a human should look at; neither costs a repair round."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import experiment
from tests.support.cli import run_json as run_cli
from tests.support.fake_anthropic import serving, tool_answer
from tests.support.git_repos import git, remote_refs

pytestmark = pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")

GOOD = {
    "root_cause": "len() is called on an int.",
    "explanation": "Use the row count.",
    "description": "use the row count for the width",
    "edits": [{"path": "src/train.py", "search": "    width = len(5)\n", "replace": "    width = len(rows)\n"}],
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return experiment.build(tmp_path_factory.mktemp("exp"))


@pytest.fixture
def anthropic(monkeypatch):
    with serving(monkeypatch) as fake:
        yield fake


def launch_and_fail(capsys, clone: Path, branch: str) -> dict:
    code, record = run_cli(capsys, "launch", "--repo", str(clone), "--branch", branch, "--wait", "--json")
    assert code == 1 and record["state"] == "failed", record
    return record


def test_relaunch_unchanged_answer_relaunches_without_a_commit(capsys, repo, anthropic):
    origin, clone = repo
    failed = launch_and_fail(capsys, clone, "exp-llm-good")
    anthropic.script(
        tool_answer({"reason": "The node was preempted (SIGTERM); the code is fine."}, name="relaunch_unchanged")
    )
    before = remote_refs(origin)

    code, result = run_cli(capsys, "fix", "--repo", str(clone), "--branch", "exp-llm-good", "--json", "--no-relaunch")

    assert result["attempts"][0]["fixer"].endswith(":relaunch"), result
    assert result["commits"] == [] and remote_refs(origin) == before, "nothing committed or pushed"
    assert len(anthropic.requests) == 1, "no repair round"
    assert "preempted" in result["comment"]
    first = anthropic.bodies[0]["messages"][0]["content"][0]["text"]
    assert f"run: {failed['id']}" in first and "exit status: 1" in first and "state: failed" in first
    assert code == 0


def test_no_safe_fix_answer_gives_up_saying_what_to_look_at(capsys, repo, anthropic):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-llm-denied")
    answer = {"root_cause": "The width comes from a dataset the repo does not hold.", "look_at": "the data export job"}
    anthropic.script(tool_answer(answer, name="no_safe_fix"))
    before = remote_refs(origin)

    code, result = run_cli(capsys, "fix", "--repo", str(clone), "--branch", "exp-llm-denied", "--json")

    assert code == 1 and result["action"] == "gave_up"
    assert "no safe fix" in result["reason"] and "the data export job" in result["reason"]
    assert " tokens, $" in result["reason"] and "cache write" in result["reason"]
    assert len(anthropic.requests) == 1, "no repair round"
    assert remote_refs(origin) == before


def test_look_ups_then_a_patch_is_pushed_and_verified(capsys, repo, anthropic):
    origin, clone = repo
    launch_and_fail(capsys, clone, "exp-llm-nomatch")
    anthropic.script(
        tool_answer({"path": "src/train.py", "start": 1, "end": 40}, name="read_file"),
        tool_answer({"pattern": "len\\(", "glob": "src/*.py"}, name="grep"),
        tool_answer({"path": "../../etc/passwd"}, name="read_file"),
        tool_answer(GOOD),
    )

    code, result = run_cli(capsys, "fix", "--repo", str(clone), "--branch", "exp-llm-nomatch", "--json")

    assert code == 0, result["comment"]
    assert (result["action"], result["verified"]) == ("patched", True)
    assert "width = len(rows)" in git(origin, "show", "exp-llm-nomatch:src/train.py")
    bodies = anthropic.bodies
    assert len(bodies) == 4
    results = [b["messages"][-1]["content"][0] for b in bodies[1:]]
    assert "    width = len(5)" in results[0]["content"][0]["text"]  # read_file: exact, numbered lines
    assert "src/train.py:" in results[1]["content"][0]["text"]  # grep hits
    assert results[2]["is_error"] and "goes up" in results[2]["content"][0]["text"]
    # the first request caches only the fixed prefix; later ones mark the conversation
    assert "cache_control" not in json.dumps(bodies[0]["messages"])
    assert bodies[2]["messages"][-1]["content"][-1]["cache_control"] == {"type": "ephemeral"}
    assert "cache write" in result["comment"] and "cache read" in result["comment"]
    assert " over 4 requests (" in result["comment"]
