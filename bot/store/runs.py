"""The bot's persistent state: one SQLite file under `settings.state_dir`.

Several processes share it (the server, its workers, command-line calls, the detached
supervisors of local runs), so: WAL mode, a busy timeout, one connection per thread and
process, short transactions, and `BEGIN IMMEDIATE` for every read-modify-write.

The schema is versioned with `PRAGMA user_version`. To add a table, append a migration to
`MIGRATIONS`; never edit one that has shipped.
"""
from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator

from bot.core.errors import BadInput, OperationFailed
from bot.core.locks import exclusive
from bot.runs.model import ACTIVE_STATES, STATES, RunInfo

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 30_000

# One entry per schema version, each a tuple of SQL statements run in one transaction.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE runs (
            id TEXT PRIMARY KEY,
            repo TEXT NOT NULL,
            branch TEXT NOT NULL,
            "commit" TEXT,
            backend TEXT NOT NULL,
            handle TEXT NOT NULL DEFAULT '{}',
            state TEXT NOT NULL,
            exit_code INTEGER,
            started_at REAL,
            ended_at REAL,
            log_path TEXT,
            wandb_run_id TEXT,
            wandb_run_path TEXT,
            created_at REAL NOT NULL
        )""",
        "CREATE INDEX runs_repo_branch ON runs (repo, branch, created_at)",
        "CREATE INDEX runs_state ON runs (state)",
    ),
]


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
        return RunInfo(id=self.id, state=self.state, branch=self.branch, commit=self.commit,
                       exit_code=self.exit_code, created_at=self.created_at,
                       updated_at=self.ended_at or self.started_at, path=self.wandb_run_path,
                       source="launcher", record_id=self.id, log_path=self.log_path)

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "RunRecord":
        values = dict(row)
        values["handle"] = json.loads(values["handle"] or "{}")
        return cls(**values)


RUN_COLUMNS = tuple(f.name for f in fields(RunRecord))


def connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to the state database, shared by several processes."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing opens a
    # transaction behind our back and holds the lock.
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


def prepare(conn: sqlite3.Connection, path: Path, set_up: Callable[[], None],
            ready: Callable[[], bool] = lambda: False) -> None:
    """Turn WAL on and run `set_up`, unless both are done already (`ready`).

    Switching a new file to WAL needs the only lock on it, and SQLite answers "database is
    locked" at once, without waiting, when processes race for that: setting up takes turns.
    """
    if conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal" and ready():
        return
    with exclusive(path.with_name(path.name + ".lock")):
        conn.execute("PRAGMA journal_mode = WAL")
        set_up()


class StateStore:
    def __init__(self, path: Path):
        self.path = Path(path)
        self._local = threading.local()
        prepare(self.connection, self.path, self._migrate,
                ready=lambda: self.schema_version == len(MIGRATIONS))

    @classmethod
    def open(cls, state_dir: Path) -> "StateStore":
        state_dir = Path(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        return cls(state_dir / DB_NAME)

    # -- connections and transactions -------------------------------------------------

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection; a forked child gets its own rather than its parent's."""
        conn = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = connect(self.path)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the lock up front, so read-modify-write is safe."""
        conn = self.connection
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None

    def _migrate(self) -> None:
        with self.transaction() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in statements:
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {number}")

    @property
    def schema_version(self) -> int:
        return self.connection.execute("PRAGMA user_version").fetchone()[0]

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
            active = unless_active and conn.execute(
                f"SELECT id, state FROM runs WHERE repo = ? AND branch = ? AND state IN "
                f"({', '.join('?' * len(ACTIVE_STATES))}) LIMIT 1",
                (record.repo, record.branch, *ACTIVE_STATES)).fetchone()
            if active:
                raise OperationFailed(f"a run of branch '{record.branch}' is already {active['state']}: "
                                      f"{active['id']}")
            conn.execute(f"INSERT INTO runs ({names}) VALUES ({marks})", tuple(row.values()))
        return record

    def update_run(self, run_id: str, *, if_state: str | tuple[str, ...] | None = None,
                   **values: Any) -> RunRecord:
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

    def list_runs(self, *, repo: str | None = None, branch: str | None = None,
                  state: str | tuple[str, ...] | None = None, limit: int | None = None) -> list[RunRecord]:
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
    return f'"{name}"'   # "commit" is an SQL keyword


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r} (known: {', '.join(STATES)})")


def _state_matches(state: str, wanted: str | tuple[str, ...] | None) -> bool:
    if wanted is None:
        return True
    return state == wanted if isinstance(wanted, str) else state in wanted
