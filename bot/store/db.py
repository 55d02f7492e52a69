"""The bot's one SQLite database: `state.db` under `settings.state_dir`.

Several processes share it (the server, its workers, command-line calls, the detached
supervisors of local runs), so: WAL mode, a busy timeout, one connection per thread and
process, short transactions, and `BEGIN IMMEDIATE` for every read-modify-write.

The schema is versioned with `PRAGMA user_version`: migration n takes the database from
version n-1 to n. To change the schema, append a migration to `MIGRATIONS`; never edit one
that has shipped.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bot.core.locks import exclusive

DB_NAME = "state.db"
BUSY_TIMEOUT_MS = 30_000

Migration = tuple[str, ...]  # SQL statements, run in one transaction

# Version 1: the run records.
RUNS: Migration = (
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
        )""",  # indented as shipped: the text is kept in sqlite_master
    "CREATE INDEX runs_repo_branch ON runs (repo, branch, created_at)",
    "CREATE INDEX runs_state ON runs (state)",
)

# Version 2: the job queue. Earlier releases created these tables outside the versioning,
# beside version 1, so they may exist already: IF NOT EXISTS upgrades such a file in place.
JOB_TABLES: Migration = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        repo TEXT,
        branch TEXT,
        lane TEXT NOT NULL,
        status TEXT NOT NULL DEFAULT 'queued',
        payload TEXT NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, id)",
    "CREATE INDEX IF NOT EXISTS jobs_lane ON jobs (lane, status)",
    """CREATE TABLE IF NOT EXISTS deliveries (
        delivery_id TEXT PRIMARY KEY,
        job_id INTEGER,
        outcome TEXT NOT NULL,
        received_at REAL NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS job_steps (
        job_id INTEGER NOT NULL,
        step TEXT NOT NULL,
        data TEXT NOT NULL,
        recorded_at REAL NOT NULL,
        PRIMARY KEY (job_id, step)
    )""",
    """CREATE TABLE IF NOT EXISTS branch_attempts (
        repo TEXT NOT NULL,
        branch TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL,
        PRIMARY KEY (repo, branch)
    )""",
)

# Version 3: a fix job parked at a wait (status 'waiting') keeps the wait (JSON: bot.loop.waits)
# and when it is due at the latest; the watcher reads them, a restart resumes from them.
JOB_WAITS: Migration = (
    "ALTER TABLE jobs ADD COLUMN wait TEXT",
    "ALTER TABLE jobs ADD COLUMN due_at REAL",
)

# Version 4: the inbox, deliveries received and not yet admitted to the queue: the webhook's one
# write is a row here (no index to update); a worker admits them when it claims (bot.app.queue).
INBOX: Migration = (
    """CREATE TABLE inbox (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        received_at REAL NOT NULL
    )""",
)

MIGRATIONS: list[Migration] = [RUNS, JOB_TABLES, JOB_WAITS, INBOX]


def connect(path: Path, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """A connection to the state database, shared by several processes."""
    # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing opens a
    # transaction behind our back and holds the lock.
    conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
    conn.execute("PRAGMA synchronous = NORMAL")
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes the lock up front, so read-modify-write is safe."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection) -> None:
    """Apply the migrations the file has not had yet, each with its version, in one transaction."""
    with write_transaction(conn):
        version = schema_version(conn)
        for number, statements in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")


def prepare(conn: sqlite3.Connection, path: Path) -> None:
    """Turn WAL on and migrate, unless both are done already.

    Switching a new file to WAL needs the only lock on it, and SQLite answers "database is
    locked" at once, without waiting, when processes race for that: setting up takes turns.
    """
    if _ready(conn):
        return
    with exclusive(path.with_name(path.name + ".lock")):
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)


def _ready(conn: sqlite3.Connection) -> bool:
    wal = conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    return wal and schema_version(conn) >= len(MIGRATIONS)


class Database:
    """`state.db`, set up on open; each thread (and each forked process) gets its own connection."""

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS):
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self.auto_checkpoint = True
        self.commits = 0  # write transactions committed through this object, all threads
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        prepare(self.connection, self.path)

    @classmethod
    def in_dir(cls, state_dir: Path | str, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> Database:
        return cls(Path(state_dir) / DB_NAME, busy_timeout_ms=busy_timeout_ms)

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's connection; a forked child gets its own rather than its parent's."""
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            conn = connect(self.path, self.busy_timeout_ms)
            if not self.auto_checkpoint:
                conn.execute("PRAGMA wal_autocheckpoint = 0")
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def checkpoint_elsewhere(self) -> None:
        """Commits through this object no longer copy the WAL into the database file: SQLite does
        that in the commit that crosses 1,000 pages, and its fsync stalls the committing thread
        (an event loop, for the webhook server). The owner calls `checkpoint` instead, from a
        thread of its own."""
        self.auto_checkpoint = False
        self.connection.execute("PRAGMA wal_autocheckpoint = 0")

    def checkpoint(self, *, restart_over: int | None = None) -> None:
        """Copy what the WAL holds into the database file, as far as readers allow (PASSIVE: it
        never waits for a lock, and writers carry on meanwhile).

        A WAL starts again from its beginning only when a commit finds all of it copied, which
        never happens while commits keep coming: it would grow without end. So when it holds more
        than `restart_over` frames, the checkpoint also restarts it (RESTART: writers wait for
        the few frames committed meanwhile and a sync, some ms). That is skipped, not waited for,
        while a reader still uses the WAL."""
        conn = self.connection
        busy, frames, _copied = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        if restart_over is None or busy or frames <= restart_over:
            return
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.execute("PRAGMA wal_checkpoint(RESTART)")
        finally:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction on this thread's connection (`BEGIN IMMEDIATE`)."""
        with write_transaction(self.connection) as conn:
            yield conn
        self.commits += 1

    @property
    def schema_version(self) -> int:
        return schema_version(self.connection)

    def close(self) -> None:
        """Close this thread's connection; the next use opens a new one."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            conn.close()
        self._local.conn = None
