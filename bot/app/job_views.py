"""Read-only views of the job queue for operators: the status page, `GET /jobs/{id}`, the
`jobs` command and /metrics. Each job with its step timeline and what the steps say: the
attempts made, the commits pushed, the runs launched, the LLM's tokens and cost.

Only SELECTs, on the queue's own connection: a view never changes what a worker sees.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bot.app.jobs import JobStatus
from bot.loop.journal import StepKey
from bot.loop.model import Step

OUTCOME_STEP = "outcome"  # journaled by the fix job executor when a fix job ends

JOB_COLUMNS = "id, kind, repo, branch, status, payload, tries, cancel_requested, error, created_at, updated_at"


@dataclass(frozen=True)
class StepView:
    name: str  # as journaled: "target", "1:commit", "deleted:<run>"
    data: Any
    recorded_at: float

    @property
    def attempt(self) -> int | None:
        key = StepKey.parse(self.name)
        return key.attempt if key is not None else None

    @property
    def step(self) -> str:
        """The step without its attempt or run: "commit", "deleted"; a name the journal does not
        know (the executor's "outcome") as it is."""
        key = StepKey.parse(self.name)
        return key.step.value if key is not None else self.name


@dataclass(frozen=True)
class LlmUse:
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: LlmUse) -> LlmUse:
        return LlmUse(
            self.input_tokens + other.input_tokens,
            self.output_tokens + other.output_tokens,
            self.cost_usd + other.cost_usd,
        )


@dataclass(frozen=True)
class JobView:
    id: int
    kind: str
    status: JobStatus
    repo: str | None
    branch: str | None
    payload: dict[str, Any]
    tries: int
    cancel_requested: bool
    error: str | None
    created_at: float
    updated_at: float
    steps: list[StepView] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        return len({s.attempt for s in self.steps if s.attempt is not None})

    @property
    def commits(self) -> list[str]:
        """The commits pushed, oldest first."""
        return [s.data for s in self.steps if s.step == Step.PUSH and isinstance(s.data, str)]

    @property
    def runs(self) -> list[str]:
        """The runs launched, oldest first."""
        return [s.data for s in self.steps if s.step == Step.RUN_ID and isinstance(s.data, str)]

    @property
    def outcome(self) -> str | None:
        """How a fix job ended, in words: "verified", "patched, not verified", "gave up"…"""
        data = next((s.data for s in reversed(self.steps) if s.name == OUTCOME_STEP), None)
        if not isinstance(data, dict):
            return None
        return outcome_words(str(data.get("action")), bool(data.get("verified")))

    @property
    def llm(self) -> LlmUse:
        return sum((decision_use(s.data) for s in self.steps if s.step == Step.DECISION), LlmUse())

    def to_json(self) -> dict[str, Any]:
        llm = self.llm
        return {
            "id": self.id,
            "kind": self.kind,
            "status": self.status.value,
            "repo": self.repo,
            "branch": self.branch,
            "payload": self.payload,
            "tries": self.tries,
            "cancel_requested": self.cancel_requested,
            "error": self.error,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "commits": self.commits,
            "runs": self.runs,
            "llm": {"input_tokens": llm.input_tokens, "output_tokens": llm.output_tokens, "cost_usd": llm.cost_usd},
            "steps": [{"name": s.name, "data": s.data, "recorded_at": s.recorded_at} for s in self.steps],
        }


def outcome_words(action: str, verified: bool) -> str:
    if action in ("patched", "relaunched"):
        return "verified" if verified else f"{action}, not verified"
    return {"gave_up": "gave up", "none": "nothing to fix"}.get(action, action)


def decision_use(data: Any) -> LlmUse:
    """What one attempt's decision (a journaled FixProposal) cost; nothing for a rule's fix."""
    if not isinstance(data, dict):
        return LlmUse()
    tokens = data.get("tokens")
    if not isinstance(tokens, dict):
        tokens = {}
    cost = data.get("cost_usd")
    return LlmUse(
        input_tokens=int(tokens.get("input") or 0),
        output_tokens=int(tokens.get("output") or 0),
        cost_usd=float(cost) if isinstance(cost, int | float) else 0.0,
    )


def _job(row: sqlite3.Row, steps: list[StepView]) -> JobView:
    return JobView(
        id=row["id"],
        kind=row["kind"],
        status=JobStatus(row["status"]),
        repo=row["repo"],
        branch=row["branch"],
        payload=json.loads(row["payload"]),
        tries=row["tries"],
        cancel_requested=bool(row["cancel_requested"]),
        error=row["error"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        steps=steps,
    )


def steps_of(conn: sqlite3.Connection, job_id: int) -> list[StepView]:
    rows = conn.execute(
        "SELECT step, data, recorded_at FROM job_steps WHERE job_id = ? ORDER BY recorded_at, rowid", (job_id,)
    ).fetchall()
    return [StepView(row["step"], json.loads(row["data"]), row["recorded_at"]) for row in rows]


def job(conn: sqlite3.Connection, job_id: int) -> JobView | None:
    row = conn.execute(f"SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)).fetchone()
    return _job(row, steps_of(conn, job_id)) if row is not None else None


def jobs(
    conn: sqlite3.Connection, statuses: tuple[JobStatus, ...] = tuple(JobStatus), limit: int = 50
) -> list[JobView]:
    """The newest `limit` jobs in these statuses, newest first, with their steps."""
    marks = ",".join("?" * len(statuses))
    rows = conn.execute(
        f"SELECT {JOB_COLUMNS} FROM jobs WHERE status IN ({marks}) ORDER BY id DESC LIMIT ?",
        (*[s.value for s in statuses], limit),
    ).fetchall()
    return [_job(row, steps_of(conn, row["id"])) for row in rows]


def all_steps(conn: sqlite3.Connection) -> Iterator[tuple[int, StepView]]:
    """Every journaled step, by job then time (for /metrics' step durations and LLM totals)."""
    rows = conn.execute("SELECT job_id, step, data, recorded_at FROM job_steps ORDER BY job_id, recorded_at, rowid")
    for row in rows:
        yield row["job_id"], StepView(row["step"], json.loads(row["data"]), row["recorded_at"])


def job_started(conn: sqlite3.Connection) -> dict[int, float]:
    """When each job was queued: the start of its first step's duration."""
    return {row["id"]: row["created_at"] for row in conn.execute("SELECT id, created_at FROM jobs")}
