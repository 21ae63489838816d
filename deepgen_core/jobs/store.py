"""The job store: one SQLite file in WAL mode inside the runs folder.

Every process that submits, runs or watches jobs opens the same file. Writes
are short transactions; the claim of a queued job runs under ``BEGIN
IMMEDIATE``, so two workers never start the same job. Schema changes are
numbered migrations applied in order on open, so a runs folder made by an
older version opens in a newer one.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError

logger = logging.getLogger(__name__)

STORE_NAME = "jobs.sqlite3"
STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
BUSY_TIMEOUT_MS = 10_000

MIGRATIONS = [
    """
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        params TEXT NOT NULL,
        state TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        run_dir TEXT,
        worker TEXT,
        pid INTEGER,
        heartbeat REAL,
        progress TEXT,
        error TEXT,
        log_tail TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        resume INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX jobs_state ON jobs (state, id);
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        job_id INTEGER NOT NULL,
        time REAL NOT NULL,
        type TEXT NOT NULL,
        data TEXT NOT NULL
    );
    CREATE INDEX events_job ON events (job_id, id);
    CREATE TABLE workers (
        id TEXT PRIMARY KEY,
        pid INTEGER NOT NULL,
        started REAL NOT NULL,
        heartbeat REAL NOT NULL,
        stopped REAL
    );
    """,
    """
    ALTER TABLE jobs ADD COLUMN result TEXT;
    """,
]


@dataclass
class Job:
    """One row of the job store."""

    id: int
    kind: str
    params: dict
    state: str
    created: float
    started: float | None = None
    finished: float | None = None
    run_dir: str | None = None
    worker: str | None = None
    pid: int | None = None
    heartbeat: float | None = None
    progress: dict = field(default_factory=dict)
    error: str | None = None
    log_tail: str | None = None
    attempts: int = 0
    resume: bool = False
    cancel_requested: bool = False
    result: dict | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _row_to_job(row: sqlite3.Row) -> Job:
    values = dict(row)
    values["params"] = json.loads(values["params"])
    values["progress"] = json.loads(values["progress"] or "{}")
    values["resume"] = bool(values["resume"])
    values["cancel_requested"] = bool(values["cancel_requested"])
    values["result"] = json.loads(values["result"]) if values["result"] else None
    return Job(**values)


class JobStore:
    """The jobs, their events and the live workers of one runs folder."""

    def __init__(self, runs_dir: str | os.PathLike) -> None:
        self.runs_dir = Path(runs_dir)
        self.path = self.runs_dir / STORE_NAME
        try:
            self.runs_dir.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise InputError(
                f"cannot create runs folder {self.runs_dir}: {error.strerror}; "
                "choose a writable folder with --runs-dir or DEEPGEN_RUNS_DIR"
            ) from None
        if not os.access(self.runs_dir, os.W_OK):
            raise InputError(
                f"runs folder {self.runs_dir} is not writable; fix its permissions "
                "or choose another folder with --runs-dir or DEEPGEN_RUNS_DIR"
            )
        self._connection = self._connect()

    def _connect(self) -> sqlite3.Connection:
        try:
            connection = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None
            )
            connection.row_factory = sqlite3.Row
            connection.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            self._migrate(connection)
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None
        return connection

    def _damaged(self, error: Exception) -> InputError:
        if isinstance(error, sqlite3.OperationalError) and "locked" in str(error):
            return InputError(
                f"job store {self.path} stayed locked for more than "
                f"{BUSY_TIMEOUT_MS // 1000} s ({error}); another process holds it, "
                "so wait or stop that process"
            )
        return InputError(
            f"job store {self.path} cannot be read ({error}); it is damaged. Move it "
            "aside (run folders and their checkpoints are separate files and stay "
            "intact) and a new, empty store is created on the next start"
        )

    def _migrate(self, connection: sqlite3.Connection) -> None:
        version = connection.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            logger.info("migrating job store %s to version %d", self.path, number)
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {number}")
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise

    @contextmanager
    def transaction(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        """Run the body in one transaction; ``immediate`` takes the write lock first."""
        connection = self._connection
        try:
            connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield connection
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def _query(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        try:
            return self._connection.execute(sql, args).fetchall()
        except sqlite3.DatabaseError as error:
            raise self._damaged(error) from None

    def close(self) -> None:
        self._connection.close()

    # Jobs -------------------------------------------------------------------

    def insert(
        self, kind: str, params: dict, run_dir: str | None, max_queued: int
    ) -> Job:
        """Queue a job, refusing it when ``max_queued`` jobs already wait."""
        now = time.time()
        with self.transaction(immediate=True) as db:
            queued = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued'"
            ).fetchone()[0]
            if queued >= max_queued:
                raise InputError(
                    f"{queued} jobs are already queued in {self.runs_dir}, the limit "
                    f"is {max_queued}; wait for some to finish or cancel them"
                )
            cursor = db.execute(
                "INSERT INTO jobs (kind, params, state, created, run_dir) "
                "VALUES (?, ?, 'queued', ?, ?)",
                (kind, json.dumps(params, sort_keys=True), now, run_dir),
            )
            job_id = cursor.lastrowid
            self._event(db, job_id, "state", {"state": "queued"})
        return self.get(job_id)

    def get(self, job_id: int) -> Job:
        rows = self._query("SELECT * FROM jobs WHERE id = ?", (int(job_id),))
        if not rows:
            raise InputError(
                f"job {job_id} not found in {self.path}; `deepgen jobs list` shows "
                "the jobs there"
            )
        return _row_to_job(rows[0])

    def list(
        self, states: tuple[str, ...] | None = None, limit: int = 200
    ) -> list[Job]:
        if states:
            marks = ",".join("?" for _ in states)
            rows = self._query(
                f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY id DESC LIMIT ?",
                (*states, limit),
            )
        else:
            rows = self._query("SELECT * FROM jobs ORDER BY id DESC LIMIT ?", (limit,))
        return [_row_to_job(r) for r in rows]

    def has_queued(self) -> bool:
        """Whether any job waits; a cheap read before taking the write lock."""
        return bool(self._query("SELECT 1 FROM jobs WHERE state = 'queued' LIMIT 1"))

    def claim(self, worker_id: str, max_running: int) -> Job | None:
        """Mark the oldest queued job running for ``worker_id``, atomically."""
        now = time.time()
        with self.transaction(immediate=True) as db:
            running = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'running' AND worker = ?",
                (worker_id,),
            ).fetchone()[0]
            if running >= max_running:
                return None
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY id LIMIT 1"
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', worker = ?, started = ?, "
                "heartbeat = ?, attempts = attempts + 1, error = NULL "
                "WHERE id = ? AND state = 'queued'",
                (worker_id, now, now, row["id"]),
            )
            self._event(
                db, row["id"], "state", {"state": "running", "worker": worker_id}
            )
        return self.get(row["id"])

    def set_pid(self, job_id: int, pid: int) -> None:
        with self.transaction() as db:
            db.execute("UPDATE jobs SET pid = ? WHERE id = ?", (pid, job_id))

    def beat(self, job_id: int) -> bool:
        """Refresh a running job's heartbeat; return whether cancel was requested."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET heartbeat = ? WHERE id = ? AND state = 'running'",
                (time.time(), job_id),
            )
            row = db.execute(
                "SELECT cancel_requested FROM jobs WHERE id = ?", (job_id,)
            ).fetchone()
        return bool(row and row[0])

    def report_progress(self, job_id: int, progress: dict) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET progress = ?, heartbeat = ? WHERE id = ?",
                (json.dumps(progress), time.time(), job_id),
            )
            self._event(db, job_id, "progress", progress)

    def finish(
        self,
        job_id: int,
        state: str,
        error: str | None = None,
        log_tail: str | None = None,
        result: dict | None = None,
    ) -> None:
        """Move a running (or queued) job to a finished state."""
        with self.transaction(immediate=True) as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished = ?, error = ?, log_tail = ?, "
                "result = ?, pid = NULL WHERE id = ? AND state IN ('running', 'queued')",
                (
                    state,
                    time.time(),
                    error,
                    log_tail,
                    json.dumps(result) if result is not None else None,
                    job_id,
                ),
            )
            data = {"state": state}
            if error:
                data["error"] = error
            if result is not None:
                data["result"] = result
            self._event(db, job_id, "state", data)

    def requeue(self, job_id: int, reason: str, resume: bool = True) -> None:
        """Put a job back in the queue, to resume from its last checkpoint."""
        with self.transaction(immediate=True) as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', worker = NULL, pid = NULL, "
                "resume = ?, cancel_requested = 0, error = ? WHERE id = ?",
                (int(resume), reason, job_id),
            )
            self._event(db, job_id, "state", {"state": "queued", "reason": reason})

    def request_cancel(self, job_id: int) -> Job:
        """Cancel a queued job now, or ask a running one to stop at a batch boundary."""
        job = self.get(job_id)
        if job.state in FINISHED:
            raise InputError(f"job {job_id} is already {job.state}; nothing to cancel")
        with self.transaction(immediate=True) as db:
            db.execute("UPDATE jobs SET cancel_requested = 1 WHERE id = ?", (job_id,))
            if job.state == "queued":
                db.execute(
                    "UPDATE jobs SET state = 'cancelled', finished = ? WHERE id = ?",
                    (time.time(), job_id),
                )
                self._event(db, job_id, "state", {"state": "cancelled"})
        return self.get(job_id)

    def stale_running(self, older_than: float) -> list[Job]:
        """Running jobs whose heartbeat is older than ``older_than`` seconds."""
        cutoff = time.time() - older_than
        rows = self._query(
            "SELECT * FROM jobs WHERE state = 'running' AND heartbeat < ?", (cutoff,)
        )
        return [_row_to_job(r) for r in rows]

    # Events -------------------------------------------------------------------

    @staticmethod
    def _event(db: sqlite3.Connection, job_id: int, kind: str, data: dict) -> None:
        db.execute(
            "INSERT INTO events (job_id, time, type, data) VALUES (?, ?, ?, ?)",
            (job_id, time.time(), kind, json.dumps(data)),
        )

    def events(self, job_id: int | None = None, since: int = 0) -> list[dict]:
        """Events after the cursor ``since``, oldest first."""
        if job_id is None:
            rows = self._query(
                "SELECT * FROM events WHERE id > ? ORDER BY id LIMIT 1000", (since,)
            )
        else:
            rows = self._query(
                "SELECT * FROM events WHERE job_id = ? AND id > ? ORDER BY id LIMIT 1000",
                (int(job_id), since),
            )
        return [
            {
                "id": r["id"],
                "job_id": r["job_id"],
                "time": r["time"],
                "type": r["type"],
                "data": json.loads(r["data"]),
            }
            for r in rows
        ]

    # Workers -------------------------------------------------------------------

    def register_worker(self, worker_id: str, pid: int) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO workers (id, pid, started, heartbeat) "
                "VALUES (?, ?, ?, ?)",
                (worker_id, pid, now, now),
            )

    def worker_beat(self, worker_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE workers SET heartbeat = ? WHERE id = ?",
                (time.time(), worker_id),
            )

    def worker_stopped(self, worker_id: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE workers SET stopped = ? WHERE id = ?", (time.time(), worker_id)
            )

    def live_workers(self, within: float) -> list[str]:
        cutoff = time.time() - within
        rows = self._query(
            "SELECT id FROM workers WHERE stopped IS NULL AND heartbeat >= ?", (cutoff,)
        )
        return [r["id"] for r in rows]
