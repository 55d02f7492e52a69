"""Carry out an attempt's decision on the branch: patch (rule or LLM, validated), note the fix
in the branch doc, commit, push (re-applied on a moved branch when it still fits), and report
the pushed fix — or, for a relaunch of unchanged code, report that.

Each step is journaled, so a resumed attempt never commits, pushes or comments twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.core.errors import OperationFailed
from bot.fixers.llm.client import RelaunchAdvised, fix_with_llm, spent_text
from bot.fixers.model import FixContext, FixProposal
from bot.fixers.patch import PatchError, apply_and_validate
from bot.loop.comments import Comments, final_step, next_step
from bot.loop.decide import Decision, relaunch_why, unrecorded_commit
from bot.loop.journal import StepKey, StepLog
from bot.loop.model import Attempt, Committed, Diagnosed, FixRequest, GiveUp, Outcome, Step
from bot.loop.ports import LlmSettings, Publisher
from bot.repo.branch_doc import FixEntry, add_fix_entry
from bot.repo.history import fix_message
from bot.repo.publish import PushRejected

Reporter = Callable[[str, str], None]  # (stage, markdown body)
Progress = Callable[[str], None]
DIFF_LIMIT = 20_000


@dataclass
class Applied:
    """What an attempt did to the branch: a commit, or a relaunch of unchanged code and why."""

    committed: Committed | None = None
    why: str | None = None


class Applier:
    def __init__(
        self,
        *,
        workspace: Publisher,
        settings: LlmSettings,
        config: dict[str, Any],
        worktree: Path,
        branch: str,
        steps: StepLog,
        comments: Comments,
        reporter: Reporter,
        progress: Progress,
    ):
        self.workspace = workspace
        self.settings = settings
        self.config = config
        self.worktree = worktree
        self.branch = branch
        self.steps = steps
        self.comments = comments
        self.reporter = reporter
        self.progress = progress

    def apply(
        self,
        req: FixRequest,
        found: Diagnosed,
        decision: Decision,
        fix_ctx: FixContext,
        attempt: Attempt,
        outcome: Outcome,
    ) -> Applied:
        if decision.relaunch_only and decision.proposal is not None:
            return self._relaunch_unchanged(req, found, decision.proposal, attempt, outcome)
        number = attempt.number
        commit_key = StepKey(Step.COMMIT, attempt=number)
        if decision.adopt_from:  # a bot fix committed but never pushed: it is this attempt's fix
            base = decision.adopt_from
            self.steps.once(commit_key, lambda: self._adopt(base).to_json())
        base = self.steps.once(StepKey(Step.BASE, attempt=number), lambda: self.workspace.head(self.branch))
        try:
            committed = Committed.from_json(
                self.steps.once(
                    commit_key,
                    lambda: self._patch_and_commit(found, decision.proposal, fix_ctx, number, base).to_json(),
                )
            )
        except RelaunchAdvised as advice:  # the LLM judged the failure transient: nothing to commit
            return self._relaunch_unchanged(req, found, advice.proposal, attempt, outcome)
        self.progress(f"committed {committed.sha[:8]}: Fix: {committed.proposal.description}")
        attempt.fixer = committed.proposal.fixer
        attempt.commit = self.steps.once(StepKey(Step.PUSH, attempt=number), lambda: self._push(committed.files))
        self.progress(f"pushed {attempt.commit[:8]} to {self.branch}")
        outcome.commits.append(attempt.commit)
        outcome.files_changed = sorted(set(outcome.files_changed) | set(committed.files))
        outcome.comment = self.comments.fix(found, committed, attempt, next_step(req.relaunch), None)
        self._report(number, "fix_pushed", outcome.comment)
        return Applied(committed=committed)

    def report_verdict(self, outcome: Outcome, found: Diagnosed, attempt: Attempt, applied: Applied) -> None:
        """The final comment: the fix (or the relaunch) and how its run was judged."""
        run = attempt.run or {}
        verified = outcome.verified
        step = final_step(verified, run, self.config["verify"])
        if applied.committed is not None:
            outcome.comment = self.comments.fix(found, applied.committed, attempt, step, run)
        else:
            outcome.comment = self.comments.relaunch(found, attempt.number, step, run, applied.why or "")
        self.reporter("verified" if verified else "unverified", outcome.comment)
        self.progress(
            f"{'verified' if verified else 'not verified'}: run {run['id']} is {run['state']} after {run['steps']} steps"
        )

    def _relaunch_unchanged(
        self, req: FixRequest, found: Diagnosed, proposal: FixProposal, attempt: Attempt, outcome: Outcome
    ) -> Applied:
        attempt.fixer = proposal.fixer
        why = relaunch_why(proposal)
        outcome.comment = self.comments.relaunch(found, attempt.number, next_step(req.relaunch), None, why)
        self._report(attempt.number, "relaunching", outcome.comment)
        return Applied(why=why)

    def _report(self, number: int, stage: str, body: str) -> None:
        def post() -> bool:
            self.reporter(stage, body)
            return True

        self.steps.once(StepKey(Step.REPORT, attempt=number), post)

    # -- patch and commit -------------------------------------------------------------------

    def _patch_and_commit(
        self, found: Diagnosed, proposal: FixProposal | None, fix_ctx: FixContext, number: int, base: str
    ) -> Committed:
        head = self.workspace.head(self.branch)
        if head != base:
            if unrecorded_commit(self.workspace, self.branch, base):
                return self._adopt(base)  # committed just before a crash, never recorded
            base = head  # someone else's commits came in: fix on top of them
        chosen, files = self._patch(fix_ctx, proposal)
        doc = self._add_doc_entry(found, chosen, files, number)
        sha = self.workspace.commit(
            self.branch, files + [doc], fix_message(chosen.description, found.run.id, self.comments.redactor)
        )
        return Committed(sha, files + [doc], chosen, self._diff(base))

    def _adopt(self, base: str) -> Committed:
        """The bot's own commits since `base`, taken as this attempt's fix."""
        last = self.workspace.commits_since(base, self.branch)[-1]
        files = self.workspace.changed_paths(self.branch, base, last.sha)
        proposal = FixProposal(fixer="resumed", description=last.subject.removeprefix("Fix: "), root_cause="")
        return Committed(last.sha, files, proposal, self._diff(base))

    def _patch(self, fix_ctx: FixContext, proposal: FixProposal | None) -> tuple[FixProposal, list[str]]:
        """The validated change on disk (not committed) and the files it changed."""
        if proposal is not None:
            try:
                changed = apply_and_validate(self.worktree, proposal.edits, self.config, settings=self.settings)
                return proposal, sorted(changed)
            except PatchError as exc:
                if not self.settings.anthropic_api_key:
                    raise GiveUp(f"the `{proposal.fixer}` patch failed validation: {exc}") from None
                self.progress(f"{proposal.fixer} failed validation ({exc}); asking the LLM")
        return self._llm_fix(fix_ctx)

    def _llm_fix(self, fix_ctx: FixContext) -> tuple[FixProposal, list[str]]:
        self.progress(f"asking {self.settings.anthropic_model} for a patch")
        try:
            proposal = fix_with_llm(fix_ctx, self.settings)
        except OperationFailed as exc:
            raise GiveUp(f"the LLM fixer gave up: {exc}{_spent(exc)}") from None
        return proposal, sorted({e.path for e in proposal.edits})

    def _add_doc_entry(self, found: Diagnosed, proposal: FixProposal, files: list[str], number: int) -> str:
        safe = self.comments.safe
        entry = FixEntry(
            attempt=number,
            category=found.diagnosis.category,
            summary=safe(found.diagnosis.summary),
            root_cause=safe(proposal.root_cause),
            fixer=proposal.fixer,
            files=files,
            run_id=found.run.id,
        )
        return add_fix_entry(self.worktree, self.branch, entry, self.comments.redactor)

    def _diff(self, base: str) -> str:
        return self.workspace.diff(self.branch, base)[:DIFF_LIMIT]

    # -- push -----------------------------------------------------------------------------------

    def _push(self, files: list[str]) -> str:
        """Push fast-forward; if the branch moved, re-apply on top only when the fixed files did
        not change. Returns the commit that is now on the remote."""
        ws = self.workspace
        try:
            ws.push(self.branch)
            return ws.head(self.branch)
        except PushRejected as exc:
            self.progress(f"push rejected ({exc}); the branch moved, checking whether the fix still applies")
        if not ws.rebase_onto_remote(self.branch, files):
            raise GiveUp("the branch moved on the remote and changed the files this fix touches; nothing was pushed")
        ws.push(self.branch)
        return ws.head(self.branch)


def _spent(exc: Exception) -> str:
    """What a failed LLM fix cost, when the fixer says."""
    tokens, cost = getattr(exc, "tokens", None), getattr(exc, "cost_usd", None)
    if not tokens:
        return ""
    total = sum(v for v in tokens.values() if isinstance(v, int))
    return f" ({total} tokens{f', ${cost:.4f}' if cost is not None else ''}: {spent_text(tokens, None)})"
