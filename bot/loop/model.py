"""What the fix loop takes, records and returns: the request, each attempt, the outcome, the
names of the steps it journals, and why it stops."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import Enum
from typing import Any

from bot.diagnosis.model import Diagnosis
from bot.fixers.model import Edit, FixProposal
from bot.runs.model import RunInfo

RELAUNCH = "relaunch"  # the fixer of a relaunch of unchanged code
NEWER_CODE = "relaunch:newer-code"  # the fixer of a relaunch that tests others' newer commits
RELAUNCH_FIXERS = (RELAUNCH, NEWER_CODE)


class GiveUp(Exception):
    """The loop stops: no safe fix, no progress, or no budget. The message says why."""


class Action(str, Enum):
    """What a fix did, as `fix --json` names it (DESIGN.md)."""

    PATCHED = "patched"  # code changed and relaunched
    RELAUNCHED = "relaunched"  # no code change needed: relaunched unchanged
    GAVE_UP = "gave_up"  # no safe fix, or the attempt budget is spent
    NONE = "none"  # the latest run did not fail (or a dry run)

    def __str__(self) -> str:  # f-strings and %s print the plain word on every Python
        return self.value


class Step(str, Enum):
    """Every step the journal records. The value is the persisted name: step rows written by
    earlier versions (the server's `job_steps`, the CLI's `fix-steps/*.json`) must still match."""

    # once per job
    TARGET = "target"  # the failed run the job works on
    PINNED = "pinned"  # the branch still holds the code the requester saw
    ATTEMPTS_USED = "attempts_used"  # the server: attempts spent by earlier triggers
    ATTEMPTS_COUNTED = "attempts_counted"  # the server: this job's attempts added to the budget
    # once per attempt
    DECISION = "decision"  # what the attempt does (a proposal, or the LLM)
    BASE = "base"  # the branch head the fix is made on
    COMMIT = "commit"  # the fix's commit (sha, files, proposal, diff)
    PUSH = "push"  # the commit now on the remote
    REPORT = "report"  # the PR comment about the fix or relaunch
    RUN_ID = "run_id"  # the relaunch's id, chosen before the launch
    LAUNCH = "launch"  # the relaunch itself
    # once per relaunched run
    DELETED = "deleted"  # the failed run was deleted (fix.delete_failed_run)

    def __str__(self) -> str:
        return self.value


ATTEMPT_STEPS = frozenset({Step.DECISION, Step.BASE, Step.COMMIT, Step.PUSH, Step.REPORT, Step.RUN_ID, Step.LAUNCH})
RUN_STEPS = frozenset({Step.DELETED})
# Steps whose record means something outside the process was begun: a branch, a push, a launch.
EFFECT_STEPS = frozenset({Step.BASE, Step.COMMIT, Step.PUSH, Step.RUN_ID, Step.LAUNCH})


@dataclass
class FixRequest:
    branch: str
    dry_run: bool = False
    relaunch: bool = True
    hint: str | None = None
    pr_text: str | None = None
    attempts_used: int = 0  # spent by earlier triggers on this branch
    expected_head: str | None = None  # the commit the requester saw; the branch must not have moved
    run_id: str | None = None  # the run to fix (default: the branch's latest run)


@dataclass
class Attempt:
    number: int
    category: str
    failed_run: str
    failed_steps: int = 0  # how far the failed run got
    fixer: str | None = None
    commit: str | None = None  # the pushed commit
    run: dict[str, Any] | None = None  # the relaunched run: id, state, steps
    problem: str | None = None  # why the relaunched run was not verified
    signature: tuple[Any, ...] = ()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("signature")
        return data


@dataclass
class Outcome:
    action: Action
    category: str | None = None
    verified: bool = False
    attempts: list[Attempt] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    files_changed: list[str] = field(default_factory=list)
    comment: str = ""
    new_run: dict[str, Any] | None = None
    diagnosis: dict[str, Any] | None = None
    reason: str | None = None
    patch: str | None = None  # the proposed diff, in a dry run

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["action"] = Action(self.action).value  # the plain string: the `fix --json` contract
        data["attempts"] = [a.to_json() for a in self.attempts]
        return {k: v for k, v in data.items() if v is not None or k in ("new_run", "category")}


@dataclass
class Diagnosed:
    run: RunInfo
    diagnosis: Diagnosis
    log_tail: list[str]
    history: list[dict[str, Any]]


@dataclass
class Committed:
    """What an attempt's commit step recorded. Journaled as JSON in this exact shape."""

    sha: str
    files: list[str]
    proposal: FixProposal
    diff: str

    def to_json(self) -> dict[str, Any]:
        return {"sha": self.sha, "files": self.files, "proposal": asdict(self.proposal), "diff": self.diff}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Committed:
        return cls(data["sha"], list(data["files"]), proposal_from_json(data["proposal"]), data["diff"])


def proposal_to_json(proposal: FixProposal | None) -> dict[str, Any] | None:
    return asdict(proposal) if proposal else None


def proposal_from_json(data: dict[str, Any]) -> FixProposal:
    data = dict(data)
    data["edits"] = [Edit(**e) for e in data.get("edits", [])]
    return FixProposal(**data)


def run_json(run: RunInfo) -> dict[str, Any]:
    """A run as reports and `fix --json` show it."""
    return {"id": run.id, "state": run.state, "steps": run.steps, "url": run.url}
