"""What the loop does next, decided over narrow ports (git history, runs, settings) so each
decision is unit-tested with small fakes:

- a retryable failure is relaunched unchanged; otherwise a rule fixes it, or the LLM at patch
  time, or, with neither, the loop gives up;
- when others changed the files the fix would edit since the run failed, their code is
  relaunched first (`relaunch:newer-code`);
- a resumed attempt replays its recorded decision, pushes a bot fix committed but never
  pushed, and relaunches a bot fix pushed but never run;
- the loop stops on no progress, on a human revert of a bot fix, and on a branch that moved
  since the request.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from bot.core.errors import BotError
from bot.diagnosis.model import Diagnosis
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import editable
from bot.fixers.rules import propose_rule_fix
from bot.loop.journal import StepKey, StepLog
from bot.loop.model import (
    NEWER_CODE,
    RELAUNCH,
    RELAUNCH_FIXERS,
    Attempt,
    Diagnosed,
    FixRequest,
    GiveUp,
    Step,
    proposal_from_json,
    proposal_to_json,
)
from bot.loop.ports import CommitInfo, History, LlmSettings, Runs
from bot.runs.model import RunInfo

RuleFixer = Callable[[FixContext], FixProposal | None]
EARLIER_RUNS = 6  # how many of the branch's runs a fixer sees the configs of


class Resume(Enum):
    """Where an attempt stands when it (re)starts."""

    DECIDE = "decide"  # nothing recorded: decide afresh
    REPLAY = "replay"  # a decision is recorded: do the same again
    COMMITTED = "committed"  # this attempt's fix is committed (journaled): push it
    PUSH_UNPUSHED = "push_unpushed"  # a bot fix committed here but never pushed: push it
    RELAUNCH_PUSHED = "relaunch_pushed"  # a bot fix pushed but never run: relaunch it


@dataclass(frozen=True)
class Decision:
    resume: Resume
    # None: nothing to propose (the fix is committed already) or the LLM writes it at patch time.
    proposal: FixProposal | None = None
    adopt_from: str | None = None  # PUSH_UNPUSHED: the commit the unpushed bot fix was made on

    @property
    def relaunch_only(self) -> bool:
        """Whether the attempt relaunches without changing code."""
        return self.proposal is not None and self.proposal.fixer in RELAUNCH_FIXERS


@dataclass
class Decider:
    history: History
    settings: LlmSettings
    config: dict[str, Any]
    branch: str
    rules: RuleFixer = field(default=propose_rule_fix)

    def decision(self, steps: StepLog, number: int, found: Diagnosed, fix_ctx: FixContext) -> Decision:
        """What attempt `number` does, recorded so a resumed attempt does the same."""
        if steps.done(StepKey(Step.COMMIT, attempt=number)):
            return Decision(Resume.COMMITTED)
        key = StepKey(Step.DECISION, attempt=number)
        if steps.done(key):
            return _recorded(steps, key, Resume.REPLAY, lambda: None)
        pending = pending_fix(self.history, self.branch, found.run)
        if pending and not self.history.on_remote(pending[-1], self.branch):
            # A crash, or a refused push, came between the commit and its record.
            return Decision(Resume.PUSH_UNPUSHED, adopt_from=found.run.commit)
        if pending:
            return _recorded(steps, key, Resume.RELAUNCH_PUSHED, lambda: pushed_fix_relaunch(pending[-1]))
        return _recorded(steps, key, Resume.DECIDE, lambda: self.decide(found, fix_ctx))

    def decide(self, found: Diagnosed, fix_ctx: FixContext) -> FixProposal | None:
        """A fresh decision; None: the LLM writes the fix at patch time."""
        diagnosis = found.diagnosis
        if diagnosis.retryable:
            return FixProposal(fixer=RELAUNCH, description="relaunch unchanged", root_cause=diagnosis.summary)
        proposal = self.rules(fix_ctx) if self.config.get("fix", {}).get("rules", True) else None
        untested = untested_changes(self.history, self.branch, found.run, proposal, self.config)
        if untested:
            return newer_code_relaunch(found.run, untested)
        if proposal is None and not self.settings.anthropic_api_key:
            raise GiveUp(
                f"no rule fixes this `{diagnosis.category}` failure and no LLM is configured (set ANTHROPIC_API_KEY)"
            )
        return proposal


def _recorded(steps: StepLog, key: StepKey, resume: Resume, decide: Callable[[], FixProposal | None]) -> Decision:
    data = steps.once(key, lambda: proposal_to_json(decide()))
    return Decision(resume, proposal_from_json(data) if data else None)


def pushed_fix_relaunch(sha: str) -> FixProposal:
    return FixProposal(
        fixer=RELAUNCH,
        description=f"test the pushed fix {sha[:8]}",
        root_cause=f"the fix {sha[:8]} is already on the branch but never ran",
    )


def newer_code_relaunch(run: RunInfo, untested: list[str]) -> FixProposal:
    return FixProposal(
        fixer=NEWER_CODE,
        description="test the branch's newer code",
        root_cause=(
            f"the branch changed since run {run.id} failed ({', '.join(untested[:5])}"
            f"{', …' if len(untested) > 5 else ''}): that code has not run yet"
        ),
    )


def relaunch_why(proposal: FixProposal) -> str:
    """Why an attempt relaunches unchanged code, for its report."""
    if proposal.fixer == NEWER_CODE:
        return proposal.root_cause  # names the files that changed
    if proposal.description.startswith("test the pushed fix"):
        return "the bot's fix is on the branch but has not run yet"
    if proposal.fixer.startswith("llm:"):  # the model answered relaunch_unchanged
        return f"the failure looks transient to {proposal.fixer.removeprefix('llm:').removesuffix(':relaunch')}: {proposal.root_cause}"
    return "the failure looks transient"


# -- reading the branch's history ----------------------------------------------------------


def commits_since(history: History, base: str | None, branch: str) -> list[CommitInfo] | None:
    """The branch's commits after `base`, oldest first; None when `base` is unknown here."""
    if not base:
        return None
    try:
        return list(history.commits_since(base, branch))
    except BotError:
        return None


def pending_fix(history: History, branch: str, run: RunInfo) -> list[str]:
    """Bot fixes on the branch after this run's commit, oldest first: a fix that no run has
    tried yet. Empty when a human changed the branch since, or nothing did."""
    newer = commits_since(history, run.commit, branch)
    if not newer or not all(c.by_bot for c in newer):
        return []
    return [c.sha for c in newer]


def untested_changes(
    history: History, branch: str, run: RunInfo, proposal: FixProposal | None, config: dict[str, Any]
) -> list[str]:
    """Files others changed on the branch since the failed run's commit that the fix would
    touch (for an LLM fix, any it may edit): the failure may be gone already, or a fix made
    for the old code could undo theirs or go too far."""
    changed = {
        name
        for c in commits_since(history, run.commit, branch) or []
        if not c.by_bot
        for name in history.files_changed(c.sha, branch)
    }
    if proposal is not None:
        return sorted(changed & {edit.path for edit in proposal.edits})
    return sorted(name for name in changed if editable(name, config))


def unrecorded_commit(history: History, branch: str, base: str) -> bool:
    """Whether the one commit after `base` is the bot's own and unpushed: committed just
    before a crash, never journaled. Then it is this attempt's fix, not made again."""
    newer = history.commits_since(base, branch)
    return len(newer) == 1 and newer[0].by_bot and not history.on_remote(newer[0].sha, branch)


# -- when the loop stops ---------------------------------------------------------------------


def check_not_reverted(history: History, branch: str) -> None:
    reverted = history.reverted_bot_fixes(branch)
    if reverted:
        raise GiveUp(f"a human reverted an earlier bot fix ({reverted[0][:8]}); automatic fixing of this branch is off")


def check_pinned(history: History, steps: StepLog, branch: str, expected_head: str | None) -> None:
    """The branch must hold the code the requester saw, plus bot commits at most. Checked once
    per job: a resumed job may meet its own rebased fix on a moved branch."""
    if not expected_head:
        return
    if not steps.once(Step.PINNED, lambda: only_bot_commits_since(history, expected_head, branch)):
        raise GiveUp(
            f"the branch moved since the request (expected {expected_head[:10]}, "
            f"found {history.head(branch)[:10]}); comment again to fix the new code"
        )


def only_bot_commits_since(history: History, expected: str, branch: str) -> bool:
    newer = commits_since(history, expected, branch)  # None: an unknown commit, not the branch the requester saw
    return newer is not None and history.is_ancestor(expected, branch) and all(c.by_bot for c in newer)


def check_progress(earlier: list[Attempt], attempt: Attempt) -> None:
    """An identical failure after an identical fix, no further into training, stops the loop."""
    if not earlier:
        return
    last = earlier[-1]
    if last.fixer == NEWER_CODE:  # it tested someone else's change, not a fix of ours
        return
    if last.fixer and last.signature == attempt.signature and attempt.failed_steps <= last.failed_steps:
        raise GiveUp(
            f"the same failure came back after `{last.fixer}` with no progress "
            f"({attempt.category}, step {attempt.failed_steps} again)"
        )


def signature(diagnosis: Diagnosis) -> tuple[Any, ...]:
    """What makes two failures 'the same': category, exception type, message without numbers."""
    exc = diagnosis.exception or {}
    message = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", exc.get("message") or diagnosis.summary or "")
    return (diagnosis.category, exc.get("type"), message[:200])


# -- what a fixer is given ----------------------------------------------------------------------


def fix_context(
    req: FixRequest,
    found: Diagnosed,
    earlier_attempts: list[Attempt],
    *,
    worktree: Path,
    config: dict[str, Any],
    runs: Runs,
    history: History,
) -> FixContext:
    earlier = [r.config for r in runs.runs(req.branch)[:EARLIER_RUNS] if r.id != found.run.id and r.config]
    return FixContext(
        worktree=worktree,
        branch=req.branch,
        diagnosis=found.diagnosis,
        config=config,
        log_tail=found.log_tail,
        run_config=found.run.config,
        base_branch=history.base_branch(req.branch),
        hint=req.hint,
        pr_text=req.pr_text,
        earlier_run_configs=earlier,
        previous_attempts=[a.to_json() for a in earlier_attempts],
        run=found.run,
    )
