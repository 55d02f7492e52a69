"""`fix` exits 0 only when the outcome is verified or nothing needed fixing."""

from __future__ import annotations

import pytest

from bot.cli.commands.fix import why_not_ok
from bot.loop.model import Action, FixRequest, Outcome

VERIFY = {"min_steps": 20, "timeout": 900}
RUN = {"id": "r2", "state": "running", "steps": 7}


@pytest.mark.parametrize(
    "outcome,request_,ok",
    [
        (Outcome(Action.PATCHED, verified=True, new_run=RUN), FixRequest("b"), True),
        (Outcome(Action.RELAUNCHED, verified=True, new_run=RUN), FixRequest("b"), True),
        (Outcome(Action.NONE, reason="the latest run (r1) is finished"), FixRequest("b"), True),
        (Outcome(Action.NONE), FixRequest("b", dry_run=True), True),
        (Outcome(Action.PATCHED, commits=["abc"]), FixRequest("b", relaunch=False), True),
        (Outcome(Action.PATCHED, verified=False, new_run=RUN), FixRequest("b"), False),
        (Outcome(Action.RELAUNCHED, verified=False, new_run=RUN), FixRequest("b"), False),
        (Outcome(Action.GAVE_UP, reason="no rule fixes code_error"), FixRequest("b"), False),
    ],
)
def test_the_exit_status_follows_the_outcome(outcome, request_, ok):
    assert (why_not_ok(outcome, request_, VERIFY) is None) is ok


def test_patched_but_not_verified_says_why():
    reason = why_not_ok(Outcome(Action.PATCHED, verified=False, new_run=RUN), FixRequest("exp-a"), VERIFY)
    assert reason == (
        "not verified: the relaunched run r2 logged 7 of 20 steps within 900 s and is running; the fix is pushed, "
        "watch it with `fix-and-relaunch runs --branch exp-a`"
    )
    assert (
        why_not_ok(Outcome(Action.GAVE_UP, reason="budget spent"), FixRequest("b"), VERIFY) == "gave up: budget spent"
    )
