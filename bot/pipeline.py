"""The fix loop, as one state machine:

    diagnose → decide → patch → commit → push → report → relaunch → verify
        ▲                                                            │
        └────────────── the new run failed and budget is left ───────┘

Each step with an effect outside the process (commit, push, launch, comment) is recorded
under (job, attempt, step), so a resumed job skips what it already did: it never commits,
pushes or launches twice.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from bot.context import RepoContext
from bot.diagnosis.model import Diagnosis
from bot.errors import OperationFailed
from bot.fixers.model import FixContext, FixProposal
from bot.launchers.base import ACTIVE_STATES
from bot.metrics import loss_problem
from bot.runs.model import FAILED_STATES, RunInfo
from bot import report as tpl

Reporter = Callable[[str, str], None]   # (stage, markdown body)


class GiveUp(Exception):
    """The loop stops: no safe fix, no progress, or no budget. The message says why."""


@dataclass
class FixRequest:
    branch: str
    dry_run: bool = False
    relaunch: bool = True
    hint: str | None = None
    pr_text: str | None = None
    attempts_used: int = 0          # spent by earlier triggers on this branch


@dataclass
class Attempt:
    number: int
    category: str
    failed_run: str
    fixer: str | None = None
    commit: str | None = None
    run: dict | None = None         # the relaunched run: id, state, steps
    problem: str | None = None      # why the relaunched run was not verified
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

    # -- the loop ---------------------------------------------------------------------

    def run(self, req: FixRequest) -> Outcome:
        ws = self.ctx.workspace
        self.worktree = ws.worktree(req.branch)
        self.config = self.ctx.reload_config(req.branch)
        self.runs = self.ctx.runs(req.branch)
        # A resumed job works on the run it started with, not whatever is newest now.
        failed = self.runs.get(self.steps.once("target", lambda: self.runs.latest(req.branch).id))
        if failed.state not in FAILED_STATES:
            return self._nothing_to_fix(req.branch, failed)
        reverted = ws.reverted_bot_fixes(req.branch)
        outcome = Outcome(action="gave_up")
        diverged: str | None = None
        try:
            if reverted:
                raise GiveUp(f"a human reverted an earlier bot fix ({reverted[0][:8]}); "
                             "automatic fixing of this branch is off")
            for number in range(req.attempts_used + 1, self.max_attempts + 1):
                self._check_cancelled()
                found = self._diagnose(failed, diverged)
                outcome.category = outcome.category or found.diagnosis.category
                outcome.diagnosis = outcome.diagnosis or found.diagnosis.to_json()
                attempt = Attempt(number, found.diagnosis.category, failed.id,
                                  signature=_signature(found.diagnosis))
                self._check_progress(outcome.attempts, attempt, failed)
                outcome.attempts.append(attempt)
                fix_ctx = self._fix_context(req, found, outcome.attempts[:-1])
                proposal = self._decide(found, fix_ctx)
                if req.dry_run:
                    return self._dry_run(outcome, found, proposal, fix_ctx)
                self._apply(req, found, proposal, fix_ctx, attempt, outcome)
                if not req.relaunch:
                    outcome.action = "patched" if attempt.commit else "relaunched"
                    return outcome
                self._check_cancelled()
                new = self._relaunch(req, attempt, failed, number)
                verdict, attempt.problem = self._verify(new)
                attempt.run = _run_json(verdict)
                outcome.new_run = attempt.run
                outcome.action = "patched" if outcome.commits else "relaunched"
                if attempt.problem is None and verdict.state not in FAILED_STATES + ("killed",):
                    outcome.verified = verdict.steps >= self.config["verify"]["min_steps"] or \
                        verdict.state == "finished"
                    self._report_final(outcome, found, attempt)
                    return outcome
                self.progress(f"attempt {number}: the relaunched run failed too ({attempt.problem or verdict.state})")
                failed, diverged = verdict, attempt.problem
            raise GiveUp(f"the attempt budget is spent ({self.max_attempts} attempts)")
        except GiveUp as stop:
            return self._gave_up(outcome, str(stop))

    def _check_cancelled(self) -> None:
        if self.cancelled():
            raise GiveUp("the job was cancelled (its pull request was closed)")

    @property
    def max_attempts(self) -> int:
        return self.config["fix"]["max_attempts"]

    # -- diagnose ---------------------------------------------------------------------

    def _diagnose(self, run: RunInfo, diverged: str | None) -> Diagnosed:
        from bot.diagnosis import diagnose_lines

        self.progress(f"diagnosing run {run.id} ({run.state})")
        tail = self.runs.log_tail(run, 200)
        history = self.runs.history(run, 20)
        secrets = self.ctx.settings.secrets()
        diagnosis = diagnose_lines(tail, repo_root=self.worktree, history=history, extra_secrets=secrets)
        if diverged:   # the bot stopped this run itself: its log shows no error
            diagnosis = Diagnosis(category="nan_loss", retryable=False, summary=diverged,
                                  evidence=[f"step {r.get('_step')}: {r}" for r in history[-5:]])
        self.progress(f"diagnosis: {diagnosis.category}: {diagnosis.summary}")
        from bot.diagnosis.redact import redact_lines

        return Diagnosed(run, diagnosis, redact_lines(tail, secrets), history)

    def _check_progress(self, earlier: list[Attempt], attempt: Attempt, run: RunInfo) -> None:
        """An identical failure after an identical fix, with no more steps logged, stops the loop."""
        if not earlier:
            return
        last = earlier[-1]
        same = last.signature == attempt.signature
        previous_steps = (last.run or {}).get("steps", 0)
        if same and run.steps <= max(previous_steps, 0) and last.fixer is not None:
            raise GiveUp(f"the same failure came back after `{last.fixer}` with no progress "
                         f"({attempt.category}: {attempt.signature[2] if len(attempt.signature) > 2 else ''})")

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
            return FixProposal(fixer="relaunch", description="relaunch unchanged",
                               root_cause=diagnosis.summary)
        from bot.fixers.rules import propose_rule_fix

        proposal = propose_rule_fix(fix_ctx)
        if proposal is None and not self.ctx.settings.anthropic_api_key:
            raise GiveUp(f"no rule fixes this `{diagnosis.category}` failure and no LLM is configured "
                         "(set ANTHROPIC_API_KEY)")
        return proposal   # None: the LLM decides at patch time

    def _apply(self, req, found, proposal, fix_ctx, attempt, outcome) -> None:
        number = attempt.number
        if proposal is not None and proposal.fixer == "relaunch":
            attempt.fixer = "relaunch"
            body = self._relaunch_body(found, attempt, "Re-launching job.", None)
            self.steps.once(f"{number}:report", lambda: self.reporter("relaunching", body) or True)
            return

        def patch_and_commit() -> dict:
            chosen, files = self._patch(fix_ctx, proposal)
            doc = self._add_doc_entry(req.branch, found, chosen, files, number)
            sha = self.ctx.workspace.commit(req.branch, files + [doc], f"Fix: {chosen.description}")
            return {"sha": sha, "files": files + [doc], "proposal": _proposal_json(chosen),
                    "diff": self._commit_diff(sha)}

        done = self.steps.once(f"{number}:commit", patch_and_commit)
        self._commits[number] = done
        chosen = _proposal_from_json(done["proposal"])
        attempt.fixer, attempt.commit = chosen.fixer, done["sha"]
        outcome.commits.append(done["sha"])
        outcome.files_changed = sorted(set(outcome.files_changed) | set(done["files"]))
        self.progress(f"committed {done['sha'][:8]}: Fix: {chosen.description}")
        self.steps.once(f"{number}:push", lambda: self._push(req.branch, done["files"]))
        self.progress(f"pushed {req.branch}")
        body = self._fix_body(found, chosen, attempt, done["diff"], "Re-launching job."
                              if req.relaunch else "Not relaunching (--no-relaunch).", None)
        outcome.comment = body
        self.steps.once(f"{number}:report", lambda: self.reporter("fix_pushed", body) or True)

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
        from bot.fixers.llm import fix_with_llm

        self.progress(f"asking {self.ctx.settings.anthropic_model} for a patch")
        try:
            proposal = fix_with_llm(fix_ctx, self.ctx.settings)
        except OperationFailed as exc:
            raise GiveUp(f"the LLM fixer gave up: {exc}") from None
        return proposal, sorted({e.path for e in proposal.edits})

    def _add_doc_entry(self, branch, found: Diagnosed, proposal: FixProposal, files, number) -> str:
        from bot.branch_doc import FixEntry, add_fix_entry

        entry = FixEntry(attempt=number, category=found.diagnosis.category,
                         summary=self._redact(found.diagnosis.summary),
                         root_cause=self._redact(proposal.root_cause), fixer=proposal.fixer,
                         files=files, run_id=found.run.id)
        return add_fix_entry(self.worktree, branch, entry)

    def _commit_diff(self, sha: str) -> str:
        import subprocess

        out = subprocess.run(["git", "show", "--format=", "--patch", sha], cwd=self.worktree,
                             capture_output=True, text=True)
        return out.stdout[:20000]

    def _push(self, branch: str, files: list[str]) -> bool:
        from bot.workspace import PushRejected

        ws = self.ctx.workspace
        try:
            ws.push(branch)
            return True
        except PushRejected as exc:
            self.progress(f"push rejected ({exc}); the branch moved, checking whether the fix still applies")
        if not ws.rebase_onto_remote(branch, files):
            raise GiveUp("the branch moved on the remote and changed the files this fix touches; "
                         "nothing was pushed")
        ws.push(branch)
        return True

    # -- relaunch and verify ----------------------------------------------------------

    def _relaunch(self, req: FixRequest, attempt: Attempt, failed: RunInfo, number: int) -> str:
        from bot.launch import launch_branch

        record_id = self.steps.once(f"{number}:launch", lambda: launch_branch(self.ctx, req.branch, pull=False).id)
        self.progress(f"relaunched: run {record_id}")
        if self.config["fix"]["delete_failed_run"]:
            self.steps.once(f"{number}:delete", lambda: self._delete(failed))
        return record_id

    def _delete(self, run: RunInfo) -> bool:
        self.runs.delete(run)
        self.progress(f"deleted failed run {run.id}")
        return True

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
        for _ in range(50):
            if self.runs.refresh(self.ctx.state.get_run(record_id)).state not in ACTIVE_STATES:
                return
            time.sleep(0.1)

    # -- outcomes ---------------------------------------------------------------------

    def _fix_body(self, found, proposal, attempt, diff, next_step, new_run) -> str:
        return self._redact(tpl.FIX_TEMPLATE.format(
            marker=tpl.MARKER, description=proposal.description, diagnosis=tpl.describe(found.diagnosis),
            root_cause=proposal.root_cause, next_step=next_step, diff=tpl.diff_block(diff),
            log=tpl.log_block(found.diagnosis.evidence or found.log_tail[-10:]), attempt=attempt.number,
            max_attempts=self.max_attempts, fixer=proposal.fixer, failed_run=tpl.run_link(_run_json(found.run)),
            commit=f"`{attempt.commit[:10]}`" if attempt.commit else "—", new_run=tpl.run_link(new_run),
            cost=tpl.cost_line(proposal)))

    def _relaunch_body(self, found, attempt, next_step, new_run) -> str:
        return self._redact(tpl.RELAUNCH_TEMPLATE.format(
            marker=tpl.MARKER, diagnosis=tpl.describe(found.diagnosis), next_step=next_step,
            log=tpl.log_block(found.diagnosis.evidence), attempt=attempt.number,
            max_attempts=self.max_attempts, failed_run=tpl.run_link(_run_json(found.run)),
            new_run=tpl.run_link(new_run)))

    def _report_final(self, outcome, found, attempt) -> None:
        run, verify = attempt.run, self.config["verify"]
        if outcome.verified:
            next_step = f"Verified: the relaunched run logged {run['steps']} steps with a sane loss ({run['state']})."
        else:
            next_step = (f"Not verified yet: the relaunched run logged {run['steps']} of {verify['min_steps']} "
                         f"steps within {verify['timeout']} s and is still {run['state']}.")
        done = self._commits.get(attempt.number)
        if done:
            chosen = _proposal_from_json(done["proposal"])
            outcome.comment = self._fix_body(found, chosen, attempt, done["diff"], next_step, run)
        else:
            outcome.comment = self._relaunch_body(found, attempt, next_step, run)
        self.reporter("verified" if outcome.verified else "unverified", outcome.comment)
        self.progress(f"{'verified' if outcome.verified else 'not verified'}: run {run['id']} is "
                      f"{run['state']} after {run['steps']} steps")

    def _gave_up(self, outcome: Outcome, reason: str) -> Outcome:
        outcome.action, outcome.reason = "gave_up", reason
        tried = "".join(
            f"- attempt {a.number}: `{a.category}` in run `{a.failed_run}` → "
            f"{a.fixer or 'no fix'}{f' ({a.commit[:8]})' if a.commit else ''}"
            f"{f', then: {a.problem}' if a.problem else ''}\n"
            for a in outcome.attempts)
        diagnosis = outcome.diagnosis or {}
        outcome.comment = self._redact(tpl.GAVE_UP_TEMPLATE.format(
            marker=tpl.MARKER, reason=reason,
            diagnosis=f"`{diagnosis.get('category', 'unknown')}` — {diagnosis.get('summary', 'not diagnosed')}",
            tried=f"What was tried:\n{tried}" if tried else "Nothing was tried.",
            log=tpl.log_block(diagnosis.get("evidence") or [])))
        self.reporter("gave_up", outcome.comment)
        self.progress(f"gave up: {reason}")
        return outcome

    def _dry_run(self, outcome: Outcome, found: Diagnosed, proposal: FixProposal | None,
                 fix_ctx: FixContext) -> Outcome:
        if proposal is None:
            from bot.fixers.llm import propose_llm_fix

            proposal = propose_llm_fix(fix_ctx, self.ctx.settings)
        diff = tpl.render_diff(self.worktree, proposal.edits)
        outcome.action = "none"
        outcome.patch = diff
        outcome.attempts[-1].fixer = proposal.fixer
        outcome.comment = self._redact(tpl.DRY_RUN_TEMPLATE.format(
            marker=tpl.MARKER, description=proposal.description, diagnosis=tpl.describe(found.diagnosis),
            root_cause=proposal.root_cause, fixer=proposal.fixer, diff=tpl.diff_block(diff),
            log=tpl.log_block(found.diagnosis.evidence)))
        return outcome

    def _nothing_to_fix(self, branch: str, run: RunInfo) -> Outcome:
        comment = tpl.NONE_TEMPLATE.format(marker=tpl.MARKER, branch=branch, run=run.id, state=run.state)
        return Outcome(action="none", comment=comment, new_run=_run_json(run))

    def _redact(self, text: str) -> str:
        from bot.diagnosis.redact import redact

        return redact(text, self.ctx.settings.secrets())


def _signature(diagnosis: Diagnosis) -> tuple:
    """What makes two failures 'the same': category, exception type, message without numbers."""
    import re

    exc = diagnosis.exception or {}
    message = re.sub(r"\d+(\.\d+)?(e[-+]?\d+)?", "N", exc.get("message") or diagnosis.summary or "")
    return (diagnosis.category, exc.get("type"), message[:200])


def _run_json(run: RunInfo) -> dict:
    return {"id": run.id, "state": run.state, "steps": run.steps, "url": run.url}


def _proposal_json(proposal: FixProposal) -> dict:
    data = asdict(proposal)
    return data


def _proposal_from_json(data: dict) -> FixProposal:
    from bot.fixers.model import Edit

    data = dict(data)
    data["edits"] = [Edit(**e) for e in data.get("edits", [])]
    return FixProposal(**data)
