"""Run records: each run the bot launched, in the `runs` table of the state database.

The database itself (connections, transactions, migrations) is `bot.store.db`.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from bot.core.errors import BadInput, OperationFailed
from bot.runs.model import ACTIVE_STATES, STATES, RunInfo
from bot.store.db import DB_NAME, Database

__all__ = ["DB_NAME", "RUN_COLUMNS", "RunRecord", "StateStore", "new_run_id"]


def new_run_id() -> str:
    return "r-" + secrets.token_hex(4)


@dataclass
class RunRecord:
    """A run the bot launched, as the state store keeps it."""

    id: str
    repo: str
    branch: str
    backend: str
    state: str
    created_at: float
    commit: str | None = None
    handle: dict[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    log_path: str | None = None
    wandb_run_id: str | None = None
    wandb_run_path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def to_run_info(self) -> RunInfo:
        """The run as run stores report runs, for listings that mix it with W&B's."""
        return RunInfo(
            id=self.id,
            state=self.state,
            branch=self.branch,
            commit=self.commit,
            exit_code=self.exit_code,
            created_at=self.created_at,
            updated_at=self.ended_at or self.started_at,
            path=self.wandb_run_path,
            source="launcher",
            record_id=self.id,
            log_path=self.log_path,
        )

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> RunRecord:
        values = dict(row)
        values["handle"] = json.loads(values["handle"] or "{}")
        return cls(**values)


RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))


class StateStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.db = Database(self.path)

    @classmethod
    def open(cls, state_dir: Path) -> StateStore:
        return cls(Path(state_dir) / DB_NAME)

    # -- connections and transactions -------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        return self.db.connection

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self.db.transaction() as conn:
            yield conn

    def close(self) -> None:
        self.db.close()

    @property
    def schema_version(self) -> int:
        return self.db.schema_version

    # -- runs -------------------------------------------------------------------------

    def add_run(self, *, unless_active: bool = False, **values: Any) -> RunRecord:
        """Record a new run. `repo`, `branch` and `backend` are required; id, state
        ("queued") and created_at have defaults. With `unless_active`, refuse (OperationFailed)
        when the branch has a queued or running run: checked and added in one transaction, so
        two launches of a branch at once cannot both go ahead."""
        values.setdefault("id", new_run_id())
        values.setdefault("state", "queued")
        values.setdefault("created_at", time.time())
        record = RunRecord(**values)
        _check_state(record.state)
        row = _to_row(record.to_json())
        names = ", ".join(_quote(name) for name in row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as conn:
            active = (
                unless_active
                and conn.execute(
                    f"SELECT id, state FROM runs WHERE repo = ? AND branch = ? AND state IN "
                    f"({', '.join('?' * len(ACTIVE_STATES))}) LIMIT 1",
                    (record.repo, record.branch, *ACTIVE_STATES),
                ).fetchone()
            )
            if active:
                raise OperationFailed(f"a run of branch '{record.branch}' is already {active['state']}: {active['id']}")
            conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(row.values()))
        return record

    def update_run(self, run_id: str, *, if_state: str | tuple[str, ...] | None = None, **values: Any) -> RunRecord:
        """Set fields of a run and return it. With `if_state`, change nothing unless the run
        is in that state (or one of those states); the current record is returned either way."""
        unknown = set(values) - set(RUN_COLUMNS) | ({"id"} & set(values))
        if unknown:
            raise TypeError(f"cannot update run fields: {', '.join(sorted(unknown))}")
        if "state" in values:
            _check_state(values["state"])
        with self.transaction() as conn:
            record = self._get(conn, run_id)
            if values and _state_matches(record.state, if_state):
                row = _to_row(values)
                assignments = ", ".join(f"{_quote(name)} = ?" for name in row)
                conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*row.values(), run_id))
                record = self._get(conn, run_id)
        return record

    def update_handle(self, run_id: str, /, **items: Any) -> RunRecord:
        """Merge items into a run's handle, atomically (concurrent merges all land)."""
        with self.transaction() as conn:
            record = self._get(conn, run_id)
            handle = {**record.handle, **items}
            conn.execute("UPDATE runs SET handle = ? WHERE id = ?", (json.dumps(handle), run_id))
            record.handle = handle
        return record

    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.connection.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return RunRecord.from_row(row) if row else None

    def list_runs(
        self,
        *,
        repo: str | None = None,
        branch: str | None = None,
        state: str | tuple[str, ...] | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Runs matching every filter given, newest first."""
        clauses, params = [], []
        if repo is not None:
            clauses.append("repo = ?")
            params.append(repo)
        if branch is not None:
            clauses.append("branch = ?")
            params.append(branch)
        if state is not None:
            states = (state,) if isinstance(state, str) else tuple(state)
            clauses.append(f"state IN ({', '.join('?' for _ in states)})")
            params.extend(states)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT * FROM runs {where} ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [RunRecord.from_row(row) for row in self.connection.execute(sql, params)]

    def delete_run(self, run_id: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    @staticmethod
    def _get(conn: sqlite3.Connection, run_id: str) -> RunRecord:
        row = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise BadInput(f"no run with id {run_id!r} in the state store")
        return RunRecord.from_row(row)


def _to_row(values: dict[str, Any]) -> dict[str, Any]:
    row = dict(values)
    if "handle" in row:
        row["handle"] = json.dumps(row["handle"] or {})
    for key in ("log_path", "wandb_run_path", "repo"):
        if isinstance(row.get(key), Path):
            row[key] = str(row[key])
    return row


def _quote(name: str) -> str:
    return f'"{name}"'  # "commit" is an SQL keyword


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r} (known: {', '.join(STATES)})")


def _state_matches(state: str, wanted: str | tuple[str, ...] | None) -> bool:
    if wanted is None:
        return True
    return state == wanted if isinstance(wanted, str) else state in wanted
