"""The fix loop, as one state machine:

    diagnose → decide → patch → commit → push → report → relaunch → verify
        ▲                                                            │
        └────────────── the new run failed and budget is left ───────┘

Each step with an effect outside the process (commit, push, comment, launch) is recorded
under (job, attempt, step), so a resumed job skips what it already did: it never commits,
pushes or launches twice.
"""
from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from bot.loop import report
from bot.loop.repo_context import RepoContext
from bot.diagnosis.model import Diagnosis
from bot.core.errors import BotError, OperationFailed
from bot.core.files import write_atomic
from bot.fixers.model import Edit, FixContext, FixProposal
from bot.runs.loss import loss_problem
from bot.runs.model import ACTIVE_STATES, FAILED_STATES, RunInfo

if TYPE_CHECKING:
    from bot.repo.workspace import Commit

Reporter = Callable[[str, str], None]   # (stage, markdown body)
STOP_WAIT_S = 30                         # how long a cancelled run may take to end
NEWER_CODE = "relaunch:newer-code"       # the fixer of a relaunch that tests others' newer commits
DIFF_LIMIT = 20_000


class GiveUp(Exception):
    """The loop stops: no safe fix, no progress, or no budget. The message says why."""


@dataclass
class FixRequest:
    branch: str
    dry_run: bool = False
    relaunch: bool = True
    hint: str | None = None
    pr_text: str | None = None
    attempts_used: int = 0            # spent by earlier triggers on this branch
    expected_head: str | None = None  # the commit the requester saw; the branch must not have moved


@dataclass
class Attempt:
    number: int
    category: str
    failed_run: str
    failed_steps: int = 0            # how far the failed run got
    fixer: str | None = None
    commit: str | None = None        # the pushed commit
    run: dict | None = None          # the relaunched run: id, state, steps
    problem: str | None = None       # why the relaunched run was not verified
    signature: tuple = ()

    def to_json(self) -> dict:
        data = asdict(self)
        data.pop("signature")
        return data


@dataclass
class Outcome:
    action: str                      # patched | relaunched | gave_up | none
    category: str | None = None
    verified: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    comment: str = ""
    new_run: dict | None = None
    diagnosis: dict | None = None
    reason: str | None = None
    patch: str | None = None         # the proposed diff, in a dry run

    def to_json(self) -> dict:
        data = asdict(self)
        data["attempts"] = [a.to_json() for a in self.attempts]
        return {k: v for k, v in data.items() if v is not None or k in ("new_run", "category")}


class StepLog:
    """What a job already did. In memory by default; the server passes a persistent one."""

    def __init__(self, load: Callable[[], dict] | None = None,
                 save: Callable[[str, Any], None] | None = None):
        self._done: dict[str, Any] = load() if load else {}
        self._save = save

    @classmethod
    def in_file(cls, path: Path) -> "StepLog":
        """A step log kept in a JSON file, rewritten whole (atomically) after each step."""
        def load() -> dict:
            return json.loads(path.read_text()) if path.exists() else {}

        log = cls(load=load)
        log._save = lambda key, value: _write_json(path, log._done)
        return log

    def done(self, key: str) -> bool:
        return key in self._done

    def started(self) -> bool:
        """Whether anything with an effect outside the process was begun (a patch, a launch)."""
        return any(re.fullmatch(r"\d+:(base|commit|push|run_id|launch)", key) for key in self._done)

    def once(self, key: str, action: Callable[[], Any]) -> Any:
        if key in self._done:
            return self._done[key]
        value = action()
        self._done[key] = value
        if self._save:
            self._save(key, value)
        return value


@dataclass
class Diagnosed:
    run: RunInfo
    diagnosis: Diagnosis
    log_tail: list[str]
    history: list[dict]


class Pipeline:
    def __init__(self, ctx: RepoContext, *, steps: StepLog | None = None,
                 reporter: Reporter | None = None, progress: Callable[[str], None] | None = None,
                 poll: float = 1.0, cancelled: Callable[[], bool] | None = None):
        self.ctx = ctx
        self.steps = steps or StepLog()
        self.reporter = reporter or (lambda stage, body: None)
        self.progress = progress or (lambda line: None)
        self.poll = poll
        self.cancelled = cancelled or (lambda: False)
        self._commits: dict[int, dict] = {}     # attempt number -> what its commit step recorded
        self._why: dict[int, str] = {}          # attempt number -> why it relaunched unchanged
        self._relaunched_from: list[RunInfo] = []  # failed runs a relaunch replaced

    # -- the loop ---------------------------------------------------------------------

    def run(self, req: FixRequest) -> Outcome:
        self.branch = req.branch
        self.worktree = self.ctx.workspace.worktree(req.branch)
        self.config = self.ctx.reload_config(req.branch)
        self.runs = self.ctx.runs(req.branch)
        # A resumed job works on the run it started with, not whatever is newest now.
        failed = self.runs.get(self.steps.once("target", lambda: self.runs.latest(req.branch).id))
        if failed.state not in FAILED_STATES:
            return self._nothing_to_fix(failed)
        outcome = Outcome(action="gave_up")
        try:
            self._check_branch(req)
            outcome = self._loop(req, failed, outcome)
        except GiveUp as stop:
            outcome = self._gave_up(outcome, str(stop))
        self._delete_failed_runs()
        return outcome

    def _loop(self, req: FixRequest, failed: RunInfo, outcome: Outcome) -> Outcome:
        diverged: str | None = None
        for number in range(req.attempts_used + 1, self.max_attempts + 1):
            self._check_cancelled()
            found = self._diagnose(failed, diverged)
            outcome.category = outcome.category or found.diagnosis.category
            outcome.diagnosis = outcome.diagnosis or found.diagnosis.to_json()
            attempt = Attempt(number, found.diagnosis.category, failed.id, failed.steps,
                              signature=_signature(found.diagnosis))
            self._check_progress(outcome.attempts, attempt)
            outcome.attempts.append(attempt)
            fix_ctx = self._fix_context(req, found, outcome.attempts[:-1])
            proposal = self._decision(req, number, found, fix_ctx)
            if req.dry_run:
                return self._dry_run(outcome, found, proposal, fix_ctx)
            self._apply(req, found, proposal, fix_ctx, attempt, outcome)
            if not req.relaunch:
                outcome.action = "patched" if attempt.commit else "none"
                return outcome
            self._check_cancelled()
            verdict, attempt.problem = self._verify(self._relaunch(attempt, failed))
            attempt.run = outcome.new_run = _run_json(verdict)
            outcome.action = "patched" if outcome.commits else "relaunched"
            if verdict.state == "killed" and attempt.problem is None:
                raise GiveUp(f"the relaunched run {verdict.id} was stopped by someone else")
            if attempt.problem is None and verdict.state not in FAILED_STATES:
                outcome.verified = (verdict.steps >= self.config["verify"]["min_steps"]
                                    or verdict.state == "finished")
                self._report_final(outcome, found, attempt)
                return outcome
            self.progress(f"attempt {number}: the relaunched run failed too ({attempt.problem or verdict.state})")
            failed, diverged = verdict, attempt.problem
        raise GiveUp(f"the attempt budget is spent ({self.max_attempts} attempts)")

    def _check_branch(self, req: FixRequest) -> None:
        reverted = self.ctx.workspace.reverted_bot_fixes(req.branch)
        if reverted:
            raise GiveUp(f"a human reverted an earlier bot fix ({reverted[0][:8]}); "
                         "automatic fixing of this branch is off")
        # Checked once per job: a resumed job may meet its own rebased fix on a moved branch.
        if req.expected_head and not self.steps.once("pinned", lambda: self._only_bot_commits_since(
                req.expected_head)):
            raise GiveUp(f"the branch moved since the request (expected {req.expected_head[:10]}, "
                         f"found {self.ctx.workspace.head(req.branch)[:10]}); comment again to fix the new code")

    def _only_bot_commits_since(self, expected: str) -> bool:
        newer = self._since(expected)   # None: an unknown commit, not the branch the requester saw
        return newer is not None and self.ctx.workspace.is_ancestor(expected, self.branch) \
            and all(c.by_bot for c in newer)

    def _since(self, base: str | None) -> list[Commit] | None:
        """The branch's commits after `base`, oldest first; None when `base` is unknown here."""
        if not base:
            return None
        try:
            return self.ctx.workspace.commits_since(base, self.branch)
        except BotError:
            return None

    def _check_cancelled(self) -> None:
        if self.cancelled():
            raise GiveUp("the job was cancelled (its pull request was closed)")

    @property
    def max_attempts(self) -> int:
        return self.config["fix"]["max_attempts"]

    # -- diagnose ---------------------------------------------------------------------

    def _diagnose(self, run: RunInfo, diverged: str | None) -> Diagnosed:
        from bot.diagnosis import diagnose_lines
        from bot.core.secrets import redact_lines

        self.progress(f"diagnosing run {run.id} ({run.state})")
        tail = self.runs.log_tail(run, 200)
        history = self.runs.history(run, 20)
        secrets = self.ctx.settings.secrets()
        diagnosis = diagnose_lines(tail, repo_root=self.worktree, history=history, extra_secrets=secrets)
        if diverged:   # the bot stopped this run itself: its log shows no error
            diagnosis = Diagnosis(category="nan_loss", retryable=False, summary=diverged,
                                  evidence=redact_lines([f"step {r.get('_step')}: {r}" for r in history[-5:]],
                                                        secrets))
        self.progress(f"diagnosis: {diagnosis.category}: {diagnosis.summary}")
        return Diagnosed(run, diagnosis, redact_lines(tail, secrets), history)

    def _check_progress(self, earlier: list[Attempt], attempt: Attempt) -> None:
        """An identical failure after an identical fix, no further into training, stops the loop."""
        if not earlier:
            return
        last = earlier[-1]
        if last.fixer == NEWER_CODE:   # it tested someone else's change, not a fix of ours
            return
        if last.fixer and last.signature == attempt.signature and attempt.failed_steps <= last.failed_steps:
            raise GiveUp(f"the same failure came back after `{last.fixer}` with no progress "
                         f"({attempt.category}, step {attempt.failed_steps} again)")

    # -- decide and patch -------------------------------------------------------------

    def _fix_context(self, req: FixRequest, found: Diagnosed, earlier_attempts: list[Attempt]) -> FixContext:
        earlier = [r.config for r in self.runs.runs(req.branch)[:6] if r.id != found.run.id and r.config]
        return FixContext(
            worktree=self.worktree, branch=req.branch, diagnosis=found.diagnosis, config=self.config,
            log_tail=found.log_tail, run_config=found.run.config,
            base_branch=self.ctx.workspace.base_branch(req.branch), hint=req.hint,
            pr_text=req.pr_text, earlier_run_configs=earlier,
            previous_attempts=[a.to_json() for a in earlier_attempts],
        )

    def _decide(self, found: Diagnosed, fix_ctx: FixContext) -> FixProposal | None:
        diagnosis = found.diagnosis
        if diagnosis.retryable:
            return FixProposal(fixer="relaunch", description="relaunch unchanged", root_cause=diagnosis.summary)
        from bot.fixers.rules import propose_rule_fix

        proposal = propose_rule_fix(fix_ctx)
        untested = self._untested_changes(found.run, proposal)
        if untested:
            return FixProposal(fixer=NEWER_CODE, description="test the branch's newer code", root_cause=(
                f"the branch changed since run {found.run.id} failed ({', '.join(untested[:5])}"
                f"{', …' if len(untested) > 5 else ''}): that code has not run yet"))
        if proposal is None and not self.ctx.settings.anthropic_api_key:
            raise GiveUp(f"no rule fixes this `{diagnosis.category}` failure and no LLM is configured "
                         "(set ANTHROPIC_API_KEY)")
        return proposal   # None: the LLM decides at patch time

    def _decision(self, req: FixRequest, number: int, found: Diagnosed, fix_ctx: FixContext) -> FixProposal | None:
        """What this attempt does, recorded so a resumed attempt does the same. None: the fix
        is committed already, or the LLM writes it at patch time."""
        if req.dry_run:
            return self._decide(found, fix_ctx)
        if self.steps.done(f"{number}:commit"):
            return None
        if not self.steps.done(f"{number}:decision"):
            pending = self._pending_fix(found.run)
            if pending and not self._on_remote(pending[-1]):
                # A bot fix committed here but never pushed (a crash, a refused push): push it.
                self.steps.once(f"{number}:commit", lambda: self._adopt_commit(found.run.commit))
                return None
            if pending:
                sha = pending[-1][:8]
                return self._record_decision(number, FixProposal(
                    fixer="relaunch", description=f"test the pushed fix {sha}",
                    root_cause=f"the fix {sha} is already on the branch but never ran"))
        return self._record_decision(number, None, lambda: self._decide(found, fix_ctx))

    def _record_decision(self, number: int, proposal: FixProposal | None,
                         decide: Callable[[], FixProposal | None] | None = None) -> FixProposal | None:
        data = self.steps.once(f"{number}:decision",
                               lambda: _proposal_data(decide() if decide else proposal))
        return _proposal_from_json(data) if data else None

    def _pending_fix(self, run: RunInfo) -> list[str]:
        """Bot fixes on the branch after this run's commit, oldest first: a fix that no run has
        tried yet. Empty when a human changed the branch since, or nothing did."""
        newer = self._since(run.commit)
        if not newer or not all(c.by_bot for c in newer):
            return []
        return [c.sha for c in newer]

    def _untested_changes(self, run: RunInfo, proposal: FixProposal | None) -> list[str]:
        """Files others changed on the branch since the failed run's commit that the fix would
        touch (for an LLM fix, any it may edit): the failure may be gone already, or a fix made
        for the old code could undo theirs or go too far."""
        from bot.fixers.patch import editable

        ws = self.ctx.workspace
        changed = {name for c in self._since(run.commit) or [] if not c.by_bot
                   for name in ws.files_changed(c.sha, self.branch)}
        if proposal is not None:
            return sorted(changed & {edit.path for edit in proposal.edits})
        return sorted(name for name in changed if editable(name, self.config))

    def _on_remote(self, sha: str) -> bool:
        return self.ctx.workspace.on_remote(sha, self.branch)

    def _apply(self, req, found, proposal, fix_ctx, attempt, outcome) -> None:
        number = attempt.number
        if proposal is not None and proposal.fixer in ("relaunch", NEWER_CODE):
            attempt.fixer = proposal.fixer
            why = _relaunch_why(proposal)
            next_step = "Re-launching job." if req.relaunch else "Not relaunching (--no-relaunch)."
            self._why[number] = why
            outcome.comment = self._safe(report.relaunch_body(
                diagnosis=found.diagnosis, next_step=next_step, attempt=number, max_attempts=self.max_attempts,
                failed_run=_run_json(found.run), new_run=None, why=why))
            self.steps.once(f"{number}:report", lambda: self.reporter("relaunching", outcome.comment) or True)
            return
        base = self.steps.once(f"{number}:base", lambda: self.ctx.workspace.head(req.branch))
        done = self.steps.once(f"{number}:commit", lambda: self._patch_and_commit(found, proposal, fix_ctx,
                                                                                  number, base))
        self._commits[number] = done
        chosen = _proposal_from_json(done["proposal"])
        self.progress(f"committed {done['sha'][:8]}: Fix: {chosen.description}")
        attempt.fixer = chosen.fixer
        attempt.commit = self.steps.once(f"{number}:push", lambda: self._push(req.branch, done["files"]))
        self.progress(f"pushed {attempt.commit[:8]} to {req.branch}")
        outcome.commits.append(attempt.commit)
        outcome.files_changed = sorted(set(outcome.files_changed) | set(done["files"]))
        next_step = "Re-launching job." if req.relaunch else "Not relaunching (--no-relaunch)."
        outcome.comment = self._fix_body(found, attempt, next_step, None)
        self.steps.once(f"{number}:report", lambda: self.reporter("fix_pushed", outcome.comment) or True)

    def _patch_and_commit(self, found: Diagnosed, proposal, fix_ctx: FixContext, number: int, base: str) -> dict:
        from bot.repo.workspace import fix_message

        ws = self.ctx.workspace
        if ws.head(self.branch) != base:
            newer = ws.commits_since(base, self.branch)
            if len(newer) == 1 and newer[0].by_bot and not self._on_remote(newer[0].sha):
                return self._adopt_commit(base)   # committed just before a crash, never recorded
            base = ws.head(self.branch)           # someone else's commits came in: fix on top of them
        chosen, files = self._patch(fix_ctx, proposal)
        doc = self._add_doc_entry(found, chosen, files, number)
        sha = ws.commit(self.branch, files + [doc], fix_message(chosen.description, found.run.id))
        return {"sha": sha, "files": files + [doc], "proposal": asdict(chosen), "diff": self._commit_diff(base)}

    def _adopt_commit(self, base: str) -> dict:
        """The bot's own commits since `base`, taken as this attempt's fix."""
        last = self.ctx.workspace.commits_since(base, self.branch)[-1]
        files = self._git("diff", "--name-only", base, last.sha).split()
        proposal = FixProposal(fixer="resumed", description=last.subject.removeprefix("Fix: "), root_cause="")
        return {"sha": last.sha, "files": files, "proposal": asdict(proposal), "diff": self._commit_diff(base)}

    def _patch(self, fix_ctx: FixContext, proposal: FixProposal | None) -> tuple[FixProposal, list[str]]:
        """The validated change on disk (not committed) and the files it changed."""
        from bot.fixers.patch import PatchError, apply_and_validate

        if proposal is not None:
            try:
                return proposal, sorted(apply_and_validate(self.worktree, proposal.edits, self.config))
            except PatchError as exc:
                if not self.ctx.settings.anthropic_api_key:
                    raise GiveUp(f"the `{proposal.fixer}` patch failed validation: {exc}") from None
                self.progress(f"{proposal.fixer} failed validation ({exc}); asking the LLM")
        return self._llm_fix(fix_ctx)

    def _llm_fix(self, fix_ctx: FixContext) -> tuple[FixProposal, list[str]]:
        from bot.fixers.llm.client import fix_with_llm

        self.progress(f"asking {self.ctx.settings.anthropic_model} for a patch")
        try:
            proposal = fix_with_llm(fix_ctx, self.ctx.settings)
        except OperationFailed as exc:
            raise GiveUp(f"the LLM fixer gave up: {exc}{_spent(exc)}") from None
        return proposal, sorted({e.path for e in proposal.edits})

    def _add_doc_entry(self, found: Diagnosed, proposal: FixProposal, files: list[str], number: int) -> str:
        from bot.repo.branch_doc import FixEntry, add_fix_entry

        entry = FixEntry(attempt=number, category=found.diagnosis.category,
                         summary=self._safe(found.diagnosis.summary), root_cause=self._safe(proposal.root_cause),
                         fixer=proposal.fixer, files=files, run_id=found.run.id)
        return add_fix_entry(self.worktree, self.branch, entry)

    def _commit_diff(self, base: str) -> str:
        return self._git("diff", base, "HEAD")[:DIFF_LIMIT]

    def _git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.worktree, capture_output=True, text=True,
                              check=True).stdout

    def _push(self, branch: str, files: list[str]) -> str:
        """Push fast-forward; if the branch moved, re-apply on top only when the fixed files did
        not change. Returns the commit that is now on the remote."""
        from bot.repo.workspace import PushRejected

        ws = self.ctx.workspace
        try:
            ws.push(branch)
            return ws.head(branch)
        except PushRejected as exc:
            self.progress(f"push rejected ({exc}); the branch moved, checking whether the fix still applies")
        if not ws.rebase_onto_remote(branch, files):
            raise GiveUp("the branch moved on the remote and changed the files this fix touches; "
                         "nothing was pushed")
        ws.push(branch)
        return ws.head(branch)

    # -- relaunch and verify ----------------------------------------------------------

    def _relaunch(self, attempt: Attempt, failed: RunInfo) -> str:
        from bot.store.runs import new_run_id

        number = attempt.number
        # The id is chosen (and recorded) before the launch, so a crash in between is adopted.
        run_id = self.steps.once(f"{number}:run_id", new_run_id)
        self.steps.once(f"{number}:launch", lambda: self._launch(run_id))
        self.progress(f"relaunched: run {run_id}")
        self._relaunched_from.append(failed)
        return run_id

    def _launch(self, run_id: str) -> str:
        from bot.loop.launch import launch_branch

        if self.ctx.state.get_run(run_id) is not None:
            return run_id
        try:
            return launch_branch(self.ctx, self.branch, pull=False, run_id=run_id).id
        except OperationFailed as exc:
            raise GiveUp(f"could not relaunch: {exc}") from None

    def _delete_failed_runs(self) -> None:
        """With `fix.delete_failed_run`, the runs that were relaunched go once the loop ends (not
        before: a resumed job still needs to read them)."""
        if not self.config["fix"]["delete_failed_run"]:
            return
        for run in self._relaunched_from:
            if self.steps.done(f"deleted:{run.id}"):
                continue
            try:
                self.runs.delete(self.runs.get(run.id))
            except BotError as exc:
                self.progress(f"could not delete failed run {run.id}: {exc}")
            self.steps.once(f"deleted:{run.id}", lambda: True)
            self.progress(f"deleted failed run {run.id}")

    def _verify(self, record_id: str) -> tuple[RunInfo, str | None]:
        """Wait for the new run's first `verify.min_steps` steps (or its end), then judge them."""
        verify = self.config["verify"]
        deadline = time.monotonic() + verify["timeout"]
        self.progress(f"watching run {record_id} for {verify['min_steps']} steps")
        while True:
            run = self.runs.get(record_id)
            problem = loss_problem(self.runs.history(run, max(verify["min_steps"], 10)))
            if problem and run.state in ACTIVE_STATES:
                self._stop(record_id)
                run = self.runs.get(record_id)
            if problem or run.state not in ACTIVE_STATES or run.steps >= verify["min_steps"]:
                return run, problem
            if time.monotonic() > deadline:
                return run, None
            time.sleep(self.poll)

    def _stop(self, record_id: str) -> None:
        record = self.ctx.state.get_run(record_id)
        self.ctx.launcher(record.backend, self.config).cancel(record.handle)
        deadline = time.monotonic() + STOP_WAIT_S
        while self.runs.refresh(self.ctx.state.get_run(record_id)).state in ACTIVE_STATES:
            if time.monotonic() > deadline:
                raise GiveUp(f"run {record_id} did not stop within {STOP_WAIT_S} s of being cancelled")
            time.sleep(0.1)

    # -- outcomes ---------------------------------------------------------------------

    def _fix_body(self, found: Diagnosed, attempt: Attempt, next_step: str, new_run: dict | None) -> str:
        done = self._commits[attempt.number]
        return self._safe(report.fix_body(
            proposal=_proposal_from_json(done["proposal"]), diagnosis=found.diagnosis, next_step=next_step,
            diff=done["diff"], log=found.log_tail, attempt=attempt.number, max_attempts=self.max_attempts,
            failed_run=_run_json(found.run), commit=attempt.commit, new_run=new_run))

    def _report_final(self, outcome: Outcome, found: Diagnosed, attempt: Attempt) -> None:
        run, verify = attempt.run, self.config["verify"]
        if outcome.verified:
            next_step = f"Verified: the relaunched run logged {run['steps']} steps with a sane loss ({run['state']})."
        else:
            next_step = (f"Not verified yet: the relaunched run logged {run['steps']} of {verify['min_steps']} "
                         f"steps within {verify['timeout']} s and is still {run['state']}.")
        if attempt.number in self._commits:
            outcome.comment = self._fix_body(found, attempt, next_step, run)
        else:
            outcome.comment = self._safe(report.relaunch_body(
                diagnosis=found.diagnosis, next_step=next_step, attempt=attempt.number,
                max_attempts=self.max_attempts, failed_run=_run_json(found.run), new_run=run,
                why=self._why[attempt.number]))
        self.reporter("verified" if outcome.verified else "unverified", outcome.comment)
        self.progress(f"{'verified' if outcome.verified else 'not verified'}: run {run['id']} is "
                      f"{run['state']} after {run['steps']} steps")

    def _gave_up(self, outcome: Outcome, reason: str) -> Outcome:
        outcome.action, outcome.reason = "gave_up", reason
        outcome.comment = self._safe(report.gave_up_body(
            reason=reason, diagnosis=outcome.diagnosis, attempts=[a.to_json() for a in outcome.attempts]))
        self.reporter("gave_up", outcome.comment)
        self.progress(f"gave up: {reason}")
        return outcome

    def _dry_run(self, outcome: Outcome, found: Diagnosed, proposal: FixProposal | None,
                 fix_ctx: FixContext) -> Outcome:
        """Nothing is changed: `action` stays `none` and the proposed diff is shown."""
        if proposal is None:
            from bot.fixers.llm.client import propose_llm_fix

            proposal = propose_llm_fix(fix_ctx, self.ctx.settings)
        outcome.action = "none"
        outcome.patch = report.render_diff(self.worktree, proposal.edits)
        outcome.attempts[-1].fixer = proposal.fixer
        outcome.comment = self._safe(report.dry_run_body(proposal=proposal, diagnosis=found.diagnosis,
                                                         diff=outcome.patch))
        return outcome

    def _nothing_to_fix(self, run: RunInfo) -> Outcome:
        return Outcome(action="none", comment=report.none_body(branch=self.branch, run=_run_json(run)),
                       reason=f"the latest run ({run.id}) is {run.state}")

    def _safe(self, text: str) -> str:
        return report.safe(text, self.ctx.settings.secrets())


def _signature(diagnosis: Diagnosis) -> tuple:
    """What makes two failures 'the same': category, exception type, message without numbers."""
    exc = diagnosis.exception or {}
    message = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", exc.get("message") or diagnosis.summary or "")
    return (diagnosis.category, exc.get("type"), message[:200])


def _spent(exc: Exception) -> str:
    """What a failed LLM fix cost, when the fixer says."""
    tokens, cost = getattr(exc, "tokens", None), getattr(exc, "cost_usd", None)
    if not tokens:
        return ""
    total = sum(v for v in tokens.values() if isinstance(v, int))
    return f" ({total} tokens{f', ${cost:.4f}' if cost is not None else ''})"


def _run_json(run: RunInfo) -> dict:
    return {"id": run.id, "state": run.state, "steps": run.steps, "url": run.url}


def _proposal_data(proposal: FixProposal | None) -> dict | None:
    return asdict(proposal) if proposal else None


def _proposal_from_json(data: dict) -> FixProposal:
    data = dict(data)
    data["edits"] = [Edit(**e) for e in data.get("edits", [])]
    return FixProposal(**data)


def _relaunch_why(proposal: FixProposal) -> str:
    if proposal.fixer == NEWER_CODE:
        return proposal.root_cause   # names the files that changed
    if proposal.description.startswith("test the pushed fix"):
        return "the bot's fix is on the branch but has not run yet"
    return "the failure looks transient"


def _write_json(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, default=str))
