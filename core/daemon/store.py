"""Jobs persisted in SQLite, so that a daemon restarted after a crash knows every job's fate."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = (
    "queued", "running", "succeeded", "failed", "cancelled"
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
TERMINAL = (SUCCEEDED, FAILED, CANCELLED)
# A job interrupted this many times (daemon killed or crashed while it ran) is failed instead of
# re-queued: it may be the job itself that takes the daemon down.
MAX_ATTEMPTS = 2

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    state TEXT NOT NULL,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    image_sha256 TEXT NOT NULL,
    image_name TEXT NOT NULL,
    bundle TEXT NOT NULL,
    bundle_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    write_options TEXT NOT NULL,
    seed INTEGER NOT NULL,
    format TEXT NOT NULL,
    cache_key TEXT NOT NULL,
    cached INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    device TEXT,
    error TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state_seq ON jobs (state, seq);
"""


@dataclass
class Job:
    """One row of the jobs table."""

    id: str
    state: str
    created_at: float
    image_sha256: str
    image_name: str
    bundle: str
    bundle_hash: str
    params: dict[str, Any]
    write_options: dict[str, Any]
    seed: int
    format: str
    cache_key: str
    seq: int = 0
    started_at: float | None = None
    finished_at: float | None = None
    cached: bool = False
    attempts: int = 0
    device: str | None = None
    error: str | None = None

    @property
    def done(self) -> bool:
        return self.state in TERMINAL


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStore:
    """Thread-safe access to the jobs table (one connection behind a lock: every call is short).

    WAL journaling with `synchronous=NORMAL` survives a killed process without losing a
    committed transaction; only a power cut can lose the last few.
    """

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, SCHEMA_VERSION):
            raise RuntimeError(
                f"{path} was written by a newer Tressel (schema {version}); move it aside"
            )
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writes ------------------------------------------------------------------------------

    def add(self, job: Job) -> Job:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO jobs (id, state, created_at, started_at, finished_at, image_sha256,"
                " image_name, bundle, bundle_hash, params, write_options, seed, format,"
                " cache_key, cached, attempts, device, error)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (job.id, job.state, job.created_at, job.started_at, job.finished_at,
                 job.image_sha256, job.image_name, job.bundle, job.bundle_hash,
                 json.dumps(job.params, sort_keys=True),
                 json.dumps(job.write_options, sort_keys=True), job.seed, job.format,
                 job.cache_key, int(job.cached), job.attempts, job.device, job.error),
            )
            job.seq = int(cursor.lastrowid or 0)
        return job

    def claim_next(self, device: str) -> Job | None:
        """Move the oldest queued job to `running` on `device` and return it (atomically)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT * FROM jobs WHERE state=? ORDER BY seq LIMIT 1", (QUEUED,)
                ).fetchone()
                if row is None:
                    self._db.execute("COMMIT")
                    return None
                now = time.time()
                self._db.execute(
                    "UPDATE jobs SET state=?, started_at=?, device=?, attempts=attempts+1"
                    " WHERE seq=?", (RUNNING, now, device, row["seq"]),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            job = _row_to_job(row)
            job.state, job.started_at, job.device = RUNNING, now, device
            job.attempts += 1
            return job

    def finish(self, job_id: str, state: str, error: str | None = None,
               cached: bool | None = None) -> bool:
        """Record a terminal state; False when the job had already ended."""
        assert state in TERMINAL
        with self._lock:
            sets = "state=?, finished_at=?, error=?" + (", cached=?" if cached is not None else "")
            args: list[Any] = [state, time.time(), error]
            if cached is not None:
                args.append(int(cached))
            cursor = self._db.execute(
                f"UPDATE jobs SET {sets} WHERE id=? AND state IN (?, ?)",
                (*args, job_id, QUEUED, RUNNING),
            )
            return cursor.rowcount == 1

    def requeue(self, job_id: str, count_attempt: bool = False) -> bool:
        """Put a running job back at its place in the queue (a graceful stop interrupted it)."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state=?, started_at=NULL, device=NULL,"
                " attempts=attempts - ? WHERE id=? AND state=?",
                (QUEUED, 0 if count_attempt else 1, job_id, RUNNING),
            )
            return cursor.rowcount == 1

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False if it is running or already ended."""
        with self._lock:
            cursor = self._db.execute(
                "UPDATE jobs SET state=?, finished_at=?, error=? WHERE id=? AND state=?",
                (CANCELLED, time.time(), "cancelled while queued", job_id, QUEUED),
            )
            return cursor.rowcount == 1

    def recover(self) -> tuple[list[str], list[str]]:
        """After a crash: re-queue jobs that were running, or fail those interrupted too often.

        Returns (requeued ids, failed ids). Re-running is safe because the input is kept and a
        job is deterministic (seeded), so the result is the one the first run would have given.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT id, attempts FROM jobs WHERE state=?", (RUNNING,)
            ).fetchall()
            requeued, failed = [], []
            now = time.time()
            for row in rows:
                if row["attempts"] >= MAX_ATTEMPTS:
                    self._db.execute(
                        "UPDATE jobs SET state=?, finished_at=?, error=? WHERE id=?",
                        (FAILED, now,
                         (f"the daemon stopped abnormally {row['attempts']} times while "
                          "running this job, so it was not retried again: check `tressel "
                          "daemon logs`, then submit it again"), row["id"]),
                    )
                    failed.append(row["id"])
                else:
                    self._db.execute(
                        "UPDATE jobs SET state=?, started_at=NULL, device=NULL WHERE id=?",
                        (QUEUED, row["id"]),
                    )
                    requeued.append(row["id"])
            return requeued, failed

    def prune(self, keep: int) -> int:
        """Forget finished jobs beyond the newest `keep` (their cached results stay)."""
        with self._lock:
            cursor = self._db.execute(
                "DELETE FROM jobs WHERE state IN (?,?,?) AND seq NOT IN"
                " (SELECT seq FROM jobs WHERE state IN (?,?,?) ORDER BY seq DESC LIMIT ?)",
                (*TERMINAL, *TERMINAL, keep),
            )
            return cursor.rowcount

    # -- reads -------------------------------------------------------------------------------

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _row_to_job(row) if row else None

    def recent(self, limit: int = 50, state: str | None = None) -> list[Job]:
        with self._lock:
            if state:
                rows = self._db.execute(
                    "SELECT * FROM jobs WHERE state=? ORDER BY seq DESC LIMIT ?", (state, limit)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM jobs ORDER BY seq DESC LIMIT ?", (limit,)
                ).fetchall()
        return [_row_to_job(r) for r in rows]

    def queued_ids(self) -> list[str]:
        """Queued job ids in the order they will run."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id FROM jobs WHERE state=? ORDER BY seq", (QUEUED,)
            ).fetchall()
        return [r["id"] for r in rows]

    def queue_position(self, job: Job) -> int | None:
        """How many queued jobs run before `job` (0: it is next), None when it is not queued."""
        if job.state != QUEUED:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state=? AND seq<?", (QUEUED, job.seq)
            ).fetchone()
        return int(row[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT state, COUNT(*) AS n FROM jobs GROUP BY state"
            ).fetchall()
        counts = dict.fromkeys(STATES, 0)
        counts.update({r["state"]: int(r["n"]) for r in rows})
        return counts

    def inputs_in_use(self) -> set[str]:
        """Image hashes that a queued or running job still needs."""
        with self._lock:
            rows = self._db.execute(
                "SELECT DISTINCT image_sha256 FROM jobs WHERE state IN (?, ?)", (QUEUED, RUNNING)
            ).fetchall()
        return {r[0] for r in rows}


def _row_to_job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], state=row["state"], created_at=row["created_at"],
        image_sha256=row["image_sha256"], image_name=row["image_name"], bundle=row["bundle"],
        bundle_hash=row["bundle_hash"], params=json.loads(row["params"]),
        write_options=json.loads(row["write_options"]), seed=row["seed"], format=row["format"],
        cache_key=row["cache_key"], seq=row["seq"], started_at=row["started_at"],
        finished_at=row["finished_at"], cached=bool(row["cached"]), attempts=row["attempts"],
        device=row["device"], error=row["error"],
    )
