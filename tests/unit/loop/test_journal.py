"""The step journal: typed keys, persisted under the names earlier versions wrote, so a job
stopped by the previous version resumes in this one."""

from __future__ import annotations

import json

import pytest

from bot.loop.journal import StepKey, StepLog
from bot.loop.model import Step

# Step rows as the previous version wrote them (server `job_steps`, CLI `fix-steps/*.json`).
EARLIER_ROWS = {
    "attempts_used": 1,
    "target": "run-1",
    "pinned": True,
    "2:decision": None,
    "2:base": "c0",
    "2:commit": {"sha": "b1", "files": ["a.py"], "proposal": {}, "diff": ""},
    "2:push": "b1",
    "2:report": True,
    "2:run_id": "run-2",
    "deleted:run-1": True,
}


@pytest.mark.parametrize(
    "key, name",
    [
        (StepKey(Step.TARGET), "target"),
        (StepKey(Step.ATTEMPTS_COUNTED), "attempts_counted"),
        (StepKey(Step.COMMIT, attempt=3), "3:commit"),
        (StepKey(Step.RUN_ID, attempt=12), "12:run_id"),
        (StepKey(Step.DELETED, run="abc123"), "deleted:abc123"),
        (StepKey(Step.DELETED, run="team/project:run"), "deleted:team/project:run"),
    ],
)
def test_a_key_persists_under_the_earlier_name_and_reads_back(key, name):
    assert str(key) == name
    assert StepKey.parse(name) == key


@pytest.mark.parametrize("name", ["3:target", "commit", "deleted", "target:x", "3:nonsense", "later_step", ""])
def test_a_name_this_version_does_not_know_parses_to_nothing(name):
    assert StepKey.parse(name) is None


@pytest.mark.parametrize(
    "step, kwargs",
    [
        (Step.COMMIT, {}),
        (Step.TARGET, {"attempt": 1}),
        (Step.DELETED, {}),
        (Step.PUSH, {"run": "r"}),
    ],
)
def test_a_key_in_the_wrong_scope_is_refused(step, kwargs):
    with pytest.raises(ValueError):
        StepKey(step, **kwargs)


def test_a_step_runs_once_and_its_value_is_replayed():
    saved: dict = {}
    log = StepLog(save=saved.__setitem__)
    calls: list[int] = []
    key = StepKey(Step.RUN_ID, attempt=1)
    assert log.once(key, lambda: calls.append(1) or "run-2") == "run-2"
    assert log.once(key, lambda: calls.append(2) or "run-3") == "run-2"
    assert calls == [1] and saved == {"1:run_id": "run-2"} and log.done(key)


def test_rows_written_by_the_previous_version_resume():
    log = StepLog(load=lambda: dict(EARLIER_ROWS))
    assert log.done(Step.TARGET) and log.done(StepKey(Step.COMMIT, attempt=2))
    assert log.done(StepKey(Step.DELETED, run="run-1"))
    assert not log.done(StepKey(Step.LAUNCH, attempt=2))
    assert log.once(StepKey(Step.PUSH, attempt=2), lambda: "again") == "b1"
    assert log.rows() == EARLIER_ROWS


def test_a_plain_string_names_a_step_and_nothing_else():
    log = StepLog(load=lambda: {"attempts_used": 2})
    assert log.once("attempts_used", lambda: 0) == 2
    assert log.done("2:commit") is False
    with pytest.raises(ValueError, match="not a step name"):
        log.once("attempts-used", lambda: 0)


@pytest.mark.parametrize("step", [Step.BASE, Step.COMMIT, Step.PUSH, Step.RUN_ID, Step.LAUNCH])
def test_an_attempt_step_with_an_outside_effect_means_the_job_has_started(step):
    log = StepLog()
    log.once(StepKey(step, attempt=1), lambda: "x")
    assert log.started()


def test_diagnosing_deciding_and_reporting_alone_is_not_a_start():
    log = StepLog(
        load=lambda: {
            "target": "run-1",
            "pinned": True,
            "attempts_used": 0,
            "1:decision": None,
            "1:report": True,
            "deleted:run-1": True,
            "someday:step": 1,
        }
    )
    assert not log.started()


def test_a_file_journal_is_rewritten_whole_and_keeps_rows_it_does_not_know(tmp_path):
    path = tmp_path / "steps.json"
    path.write_text(json.dumps({"target": "run-1", "9:from_the_future": [1, 2]}))
    log = StepLog.in_file(path)
    log.once(StepKey(Step.BASE, attempt=1), lambda: "c0")
    assert json.loads(path.read_text()) == {"target": "run-1", "9:from_the_future": [1, 2], "1:base": "c0"}
    again = StepLog.in_file(path)
    assert again.done(StepKey(Step.BASE, attempt=1)) and again.started()


def test_a_missing_file_is_an_empty_journal(tmp_path):
    log = StepLog.in_file(tmp_path / "none.json")
    assert not log.started() and log.rows() == {}
