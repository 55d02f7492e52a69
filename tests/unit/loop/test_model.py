"""The loop's records as callers see them: `fix --json` keeps its DESIGN.md shape."""

from __future__ import annotations

import json

from bot.fixers.model import Edit, FixProposal
from bot.loop.model import Action, Attempt, Committed, Outcome, Step


def test_fix_json_keeps_its_shape_with_the_action_as_a_plain_string():
    attempt = Attempt(
        1,
        "nan_loss",
        "run-1",
        131,
        fixer="rule:lower-lr",
        commit="b1",
        run={"id": "run-2", "state": "running", "steps": 20, "url": None},
        signature=("x",),
    )
    outcome = Outcome(
        action=Action.PATCHED,
        category="nan_loss",
        verified=True,
        attempts=[attempt],
        commits=["b1"],
        files_changed=["src/config.py"],
        comment="body",
        new_run={"id": "run-2", "state": "running", "steps": 20, "url": None},
    )
    text = json.dumps(outcome.to_json())
    assert text == (
        '{"action": "patched", "category": "nan_loss", "verified": true, "attempts": [{"number": 1, '
        '"category": "nan_loss", "failed_run": "run-1", "failed_steps": 131, "fixer": "rule:lower-lr", '
        '"commit": "b1", "run": {"id": "run-2", "state": "running", "steps": 20, "url": null}, '
        '"problem": null}], "commits": ["b1"], "files_changed": ["src/config.py"], "comment": "body", '
        '"new_run": {"id": "run-2", "state": "running", "steps": 20, "url": null}}'
    )
    assert type(outcome.to_json()["action"]) is str


def test_an_outcome_without_a_run_still_names_new_run_and_category():
    data = Outcome(action=Action.NONE, reason="the latest run (r) is finished").to_json()
    assert data == {
        "action": "none",
        "category": None,
        "verified": False,
        "attempts": [],
        "commits": [],
        "files_changed": [],
        "comment": "",
        "new_run": None,
        "reason": "the latest run (r) is finished",
    }


def test_actions_and_steps_read_as_their_plain_names():
    assert f"{Action.GAVE_UP}" == "gave_up" and Action.PATCHED == "patched"
    assert {"relaunched": "success"}[Action.RELAUNCHED] == "success"
    assert f"{Step.RUN_ID}" == "run_id"


def test_a_commit_record_round_trips_through_the_journal_shape():
    committed = Committed(
        "b1",
        ["a.py", "docs/x.md"],
        FixProposal(fixer="rule:lower-lr", description="lower lr", root_cause="x", edits=[Edit("a.py", "1", "2")]),
        "diff",
    )
    data = json.loads(json.dumps(committed.to_json()))
    assert set(data) == {"sha", "files", "proposal", "diff"}
    assert Committed.from_json(data) == committed
