"""Every decision of the fix loop, including every resume decision, against small fakes of
its ports: no git, no runs, no subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.fixers.model import Edit, FixContext, FixProposal
from bot.loop import decide
from bot.loop.decide import Decider, Resume
from bot.loop.journal import StepKey, StepLog
from bot.loop.model import NEWER_CODE, RELAUNCH, Attempt, FixRequest, GiveUp, Step
from bot.repo import config as repo_config
from bot.runs.model import RunInfo
from tests.unit.loop.fakes import (
    FakeCommit,
    FakeHistory,
    FakeRuns,
    FakeSettings,
    diagnosed,
)

BRANCH = "exp-a"
LOWER_LR = FixProposal(
    fixer="rule:lower-lr",
    description="lower learning rate",
    root_cause="lr too high",
    edits=[Edit(path="src/config.py", search="lr = 1.0", replace="lr = 0.01")],
)


def history(*later: FakeCommit, pushed: set[str] | None = None) -> FakeHistory:
    """A branch whose failed run was made at c0, with `later` commits on top."""
    commits = [FakeCommit("c0"), *later]
    return FakeHistory(commits, pushed=pushed)


def failed_run(commit: str = "c0") -> RunInfo:
    return RunInfo(id="run-1", state="failed", commit=commit, steps=131)


class Rules:
    """A rule fixer that proposes `proposal` and counts its calls."""

    def __init__(self, proposal: FixProposal | None = LOWER_LR):
        self.proposal = proposal
        self.calls = 0

    def __call__(self, ctx: FixContext) -> FixProposal | None:
        self.calls += 1
        return self.proposal


def decider(hist: FakeHistory, rules: Rules, *, llm_key: str | None = None) -> Decider:
    return Decider(hist, FakeSettings(anthropic_api_key=llm_key), repo_config.parse(""), BRANCH, rules)


def fix_ctx(run: RunInfo) -> FixContext:
    return FixContext(worktree=Path("/nowhere"), branch=BRANCH, diagnosis=diagnosed(run).diagnosis, config={})


def decide_fresh(
    hist: FakeHistory,
    rules: Rules,
    found_category: str = "nan_loss",
    *,
    retryable: bool = False,
    llm_key: str | None = None,
) -> FixProposal | None:
    run = failed_run()
    return decider(hist, rules, llm_key=llm_key).decide(
        diagnosed(run, found_category, retryable=retryable), fix_ctx(run)
    )


# -- a fresh decision -------------------------------------------------------------------------


def test_a_retryable_failure_is_relaunched_unchanged_without_asking_the_rules():
    rules = Rules()
    proposal = decide_fresh(history(), rules, "infra", retryable=True)
    assert proposal is not None
    assert (proposal.fixer, proposal.description, proposal.edits) == (RELAUNCH, "relaunch unchanged", [])
    assert rules.calls == 0


def test_a_rule_that_fits_is_the_fix():
    assert decide_fresh(history(), Rules()) == LOWER_LR


def test_others_changing_the_file_the_rule_would_edit_relaunches_their_code_first():
    hist = history()
    hist.add(FakeCommit("h1", "tune the lr by hand"), "src/config.py")
    proposal = decide_fresh(hist, Rules())
    assert proposal is not None and proposal.fixer == NEWER_CODE
    assert "src/config.py" in proposal.root_cause and "run-1" in proposal.root_cause
    assert decide.relaunch_why(proposal) == proposal.root_cause


def test_others_changing_other_files_do_not_delay_the_rule_fix():
    hist = history()
    hist.add(FakeCommit("h1"), "README.md")
    assert decide_fresh(hist, Rules()) == LOWER_LR


def test_the_bots_own_commits_are_not_others_changes():
    hist = history()
    hist.add(FakeCommit("b1", "Fix: something", by_bot=True), "src/config.py")
    assert decide_fresh(hist, Rules()) == LOWER_LR


def test_an_llm_fix_waits_for_a_run_of_any_editable_file_others_changed():
    hist = history()
    hist.add(FakeCommit("h1"), "src/model.py")
    proposal = decide_fresh(hist, Rules(None), llm_key="sk-test")
    assert proposal is not None and proposal.fixer == NEWER_CODE and "src/model.py" in proposal.root_cause


def test_an_llm_fix_ignores_changes_to_files_no_fix_may_edit():
    hist = history()
    hist.add(FakeCommit("h1"), ".github/workflows/ci.yml")
    assert decide_fresh(hist, Rules(None), llm_key="sk-test") is None


def test_the_newer_code_reason_names_five_files_at_most():
    hist = history()
    hist.add(FakeCommit("h1"), *[f"src/m{i}.py" for i in range(7)])
    proposal = decide_fresh(hist, Rules(None), llm_key="sk-test")
    assert proposal is not None and proposal.root_cause.count("src/m") == 5 and ", …" in proposal.root_cause


def test_no_rule_and_no_llm_key_gives_up():
    with pytest.raises(GiveUp, match="no rule fixes this `code_error` failure and no LLM is configured"):
        decide_fresh(history(), Rules(None), "code_error")


def test_no_rule_with_an_llm_key_leaves_the_fix_to_the_llm_at_patch_time():
    assert decide_fresh(history(), Rules(None), "code_error", llm_key="sk-test") is None


def test_an_unknown_failed_commit_counts_no_changes_as_others():
    run = failed_run(commit="gone")
    decision = decider(history(), Rules()).decide(diagnosed(run), fix_ctx(run))
    assert decision == LOWER_LR


# -- resuming an attempt ----------------------------------------------------------------------


def resume(hist: FakeHistory, steps: StepLog, rules: Rules, *, number: int = 1) -> decide.Decision:
    run = failed_run()
    return decider(hist, rules).decision(steps, number, diagnosed(run), fix_ctx(run))


def test_a_fresh_decision_is_journaled_as_the_attempts_decision():
    steps, rules = StepLog(), Rules()
    decision = resume(history(), steps, rules, number=2)
    assert (decision.resume, decision.proposal) == (Resume.DECIDE, LOWER_LR)
    assert steps.rows()["2:decision"]["fixer"] == "rule:lower-lr"


def test_a_recorded_decision_is_replayed_not_made_again():
    recorded = {
        "1:decision": {
            "fixer": "rule:lower-batch-size",
            "description": "halve the batch",
            "root_cause": "oom",
            "edits": [{"path": "cfg.py", "search": "a", "replace": "b", "append": False}],
            "evidence": [],
            "tokens": None,
            "cost_usd": None,
        }
    }
    rules = Rules()
    decision = resume(history(), StepLog(load=lambda: recorded), rules)
    assert decision.resume is Resume.REPLAY
    assert decision.proposal == FixProposal(
        fixer="rule:lower-batch-size", description="halve the batch", root_cause="oom", edits=[Edit("cfg.py", "a", "b")]
    )
    assert rules.calls == 0


def test_a_recorded_llm_decision_is_replayed_as_the_llm_again():
    decision = resume(history(), StepLog(load=lambda: {"1:decision": None}), Rules())
    assert (decision.resume, decision.proposal) == (Resume.REPLAY, None)


def test_an_attempt_whose_commit_is_journaled_goes_on_to_push_it():
    rules = Rules()
    decision = resume(history(), StepLog(load=lambda: {"1:commit": {"sha": "b1"}}), rules)
    assert (decision.resume, decision.proposal, decision.adopt_from) == (Resume.COMMITTED, None, None)
    assert rules.calls == 0


def test_a_bot_fix_committed_but_never_pushed_is_pushed_not_made_again():
    hist = history()
    hist.add(FakeCommit("b1", "Fix: lower learning rate", by_bot=True), "src/config.py", pushed=False)
    steps, rules = StepLog(), Rules()
    decision = resume(hist, steps, rules)
    assert (decision.resume, decision.adopt_from) == (Resume.PUSH_UNPUSHED, "c0")
    assert not decision.relaunch_only
    assert rules.calls == 0 and not steps.done(StepKey(Step.DECISION, attempt=1))


def test_a_bot_fix_pushed_but_never_run_is_relaunched():
    hist = history()
    hist.add(FakeCommit("b1aaaaaaaaaa", "Fix: lower learning rate", by_bot=True), "src/config.py")
    steps, rules = StepLog(), Rules()
    decision = resume(hist, steps, rules)
    assert decision.resume is Resume.RELAUNCH_PUSHED and decision.relaunch_only
    assert decision.proposal is not None
    assert (decision.proposal.fixer, decision.proposal.description) == (RELAUNCH, "test the pushed fix b1aaaaaa")
    assert decide.relaunch_why(decision.proposal) == "the bot's fix is on the branch but has not run yet"
    assert steps.rows()["1:decision"]["description"] == "test the pushed fix b1aaaaaa"
    assert rules.calls == 0


def test_the_latest_of_several_pending_bot_fixes_is_the_one_named():
    hist = history()
    hist.add(FakeCommit("b1", by_bot=True), "a.py")
    hist.add(FakeCommit("b2", by_bot=True), "b.py", pushed=False)
    assert resume(hist, StepLog(), Rules()).resume is Resume.PUSH_UNPUSHED


def test_a_bot_fix_followed_by_a_human_commit_is_not_pending():
    hist = history()
    hist.add(FakeCommit("b1", by_bot=True), "src/config.py")
    hist.add(FakeCommit("h1"), "README.md")
    decision = resume(hist, StepLog(), Rules())
    assert (decision.resume, decision.proposal) == (Resume.DECIDE, LOWER_LR)


def test_a_transient_failure_relaunch_gives_its_reason():
    proposal = FixProposal(fixer=RELAUNCH, description="relaunch unchanged", root_cause="preempted")
    assert decide.relaunch_why(proposal) == "the failure looks transient"


def test_the_one_unpushed_bot_commit_after_the_base_was_committed_just_before_a_crash():
    hist = history()
    hist.add(FakeCommit("b1", by_bot=True), "a.py", pushed=False)
    assert decide.unrecorded_commit(hist, BRANCH, "c0")
    hist.pushed.add("b1")
    assert not decide.unrecorded_commit(hist, BRANCH, "c0"), "pushed: not ours to adopt again"
    human = history()
    human.add(FakeCommit("h1"), "a.py", pushed=False)
    assert not decide.unrecorded_commit(human, BRANCH, "c0")
    two = history()
    two.add(FakeCommit("b1", by_bot=True), "a.py", pushed=False)
    two.add(FakeCommit("b2", by_bot=True), "b.py", pushed=False)
    assert not decide.unrecorded_commit(two, BRANCH, "c0")


# -- when the loop stops ----------------------------------------------------------------------


def attempt(number: int, *, fixer: str | None, steps: int, message: str = "Loss is NaN at step 131") -> Attempt:
    sig = decide.signature(
        diagnosed(failed_run(), exception={"type": "FloatingPointError", "message": message}).diagnosis
    )
    return Attempt(number, "nan_loss", f"run-{number}", steps, fixer=fixer, signature=sig)


def test_the_same_failure_after_a_fix_with_no_progress_stops_the_loop():
    with pytest.raises(GiveUp, match="the same failure came back after `rule:lower-lr` with no progress"):
        decide.check_progress(
            [attempt(1, fixer="rule:lower-lr", steps=131)],
            attempt(2, fixer=None, steps=131, message="Loss is NaN at step 131"),
        )


def test_the_failure_signature_ignores_numbers():
    first = attempt(1, fixer=None, steps=0, message="Loss is NaN at step 131, lr 1e-3")
    second = attempt(2, fixer=None, steps=0, message="Loss is NaN at step 57, lr 2.5e-4")
    assert first.signature == second.signature


@pytest.mark.parametrize(
    "earlier, later",
    [
        ([], attempt(1, fixer=None, steps=3)),  # the first attempt
        ([attempt(1, fixer="rule:lower-lr", steps=131)], attempt(2, fixer=None, steps=200)),  # got further
        ([attempt(1, fixer=NEWER_CODE, steps=131)], attempt(2, fixer=None, steps=131)),  # tested others' code
        ([attempt(1, fixer=None, steps=131)], attempt(2, fixer=None, steps=131)),  # nothing was tried
        (
            [attempt(1, fixer="rule:lower-lr", steps=131)],
            attempt(2, fixer=None, steps=131, message="CUDA out of memory"),
        ),  # a different failure
    ],
)
def test_progress_or_a_different_failure_goes_on(earlier, later):
    decide.check_progress(earlier, later)


def test_a_human_revert_of_a_bot_fix_stops_automatic_fixing():
    hist = history()
    hist.reverted = ["b1234567890"]
    with pytest.raises(GiveUp, match=r"a human reverted an earlier bot fix \(b1234567\)"):
        decide.check_not_reverted(hist, BRANCH)
    decide.check_not_reverted(history(), BRANCH)


def test_no_expected_head_pins_nothing():
    steps = StepLog()
    decide.check_pinned(history(), steps, BRANCH, None)
    assert not steps.done(Step.PINNED)


def test_a_branch_with_only_bot_commits_since_the_request_is_still_the_requested_code():
    hist = history()
    hist.add(FakeCommit("b1", by_bot=True), "a.py")
    steps = StepLog()
    decide.check_pinned(hist, steps, BRANCH, "c0")
    assert steps.rows() == {"pinned": True}


def test_a_branch_moved_by_someone_else_since_the_request_gives_up():
    hist = history()
    hist.add(FakeCommit("h1234567890ab"), "a.py")
    steps = StepLog()
    with pytest.raises(GiveUp, match=r"the branch moved since the request \(expected c0, found h123456789\)"):
        decide.check_pinned(hist, steps, BRANCH, "c0")
    assert steps.rows() == {"pinned": False}


def test_an_expected_head_unknown_here_is_not_the_branch_the_requester_saw():
    with pytest.raises(GiveUp, match="the branch moved since the request"):
        decide.check_pinned(history(), StepLog(), BRANCH, "elsewhere")


def test_a_resumed_job_keeps_its_pin_when_it_meets_its_own_rebased_fix():
    hist = history()
    hist.add(FakeCommit("h1"), "a.py")  # the branch moved, but the job had checked it before
    decide.check_pinned(hist, StepLog(load=lambda: {"pinned": True}), BRANCH, "c0")


# -- what a fixer is given --------------------------------------------------------------------------


def test_a_fixer_sees_earlier_runs_configs_and_the_attempts_so_far():
    runs = FakeRuns()
    runs.add("run-0", ("failed", 10))
    runs.timeline["run-0"][0].config = {"lr": 1.0}
    run = runs.add("run-1", ("failed", 131))
    run.config = {"lr": 0.5}
    earlier = attempt(1, fixer="rule:lower-lr", steps=12)
    req = FixRequest(branch=BRANCH, hint="try a smaller lr", pr_text="PR body")
    ctx = decide.fix_context(
        req, diagnosed(run), [earlier], worktree=Path("/w"), config={"fix": {}}, runs=runs, history=history()
    )
    assert ctx.earlier_run_configs == [{"lr": 1.0}], "the failed run itself is not an earlier one"
    assert (ctx.run_config, ctx.base_branch, ctx.hint, ctx.pr_text) == (
        {"lr": 0.5},
        "main",
        "try a smaller lr",
        "PR body",
    )
    assert ctx.previous_attempts == [earlier.to_json()] and "signature" not in ctx.previous_attempts[0]
