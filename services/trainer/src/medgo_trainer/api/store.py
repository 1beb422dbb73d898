"""Jobs persisted in SQLite (`<jobs_dir>/jobs.sqlite3`), keyword-only functions.

The table is the source of truth for a job's status: the runner writes every
transition here, so a restarted service knows which jobs were running and can check
on them (their pids) instead of forgetting them.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medgo_trainer.api.schemas import JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    stage TEXT NOT NULL,
    recipe TEXT NOT NULL,
    overrides TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER,
    out_dir TEXT NOT NULL,
    log_path TEXT NOT NULL,
    submitted_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    finished_at TEXT,
    exit_code INTEGER
)
"""


@dataclass(frozen=True)
class JobRow:
    id: str
    stage: str
    recipe: str
    overrides: list[str]
    status: JobStatus
    pid: int | None
    out_dir: str
    log_path: str
    submitted_by: str
    created_at: datetime
    finished_at: datetime | None
    exit_code: int | None


class JobStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.row_factory = sqlite3.Row
        try:
            with conn:  # commit on success, roll back on error
                yield conn
        finally:
            conn.close()

    def insert(self, *, job_id: str, stage: str, recipe: str, overrides: list[str], pid: int,
               out_dir: Path, log_path: Path, submitted_by: str) -> JobRow:
        now = datetime.now(UTC).isoformat()
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO jobs (id, stage, recipe, overrides, status, pid, out_dir, log_path,"
                " submitted_by, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (job_id, stage, recipe, json.dumps(overrides), JobStatus.running.value, pid,
                 str(out_dir), str(log_path), submitted_by, now),
            )
        return self.get(job_id=job_id)

    def get(self, *, job_id: str) -> JobRow | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return _row(row) if row else None

    def running(self) -> list[JobRow]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE status = 'running'").fetchall()
        return [_row(r) for r in rows]

    def finish(self, *, job_id: str, status: JobStatus, exit_code: int | None) -> None:
        """Record a terminal status once (a job that already ended keeps its first one)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE jobs SET status = ?, exit_code = ?, finished_at = ? "
                "WHERE id = ? AND status = 'running'",
                (status.value, exit_code, datetime.now(UTC).isoformat(), job_id),
            )


def _row(row: sqlite3.Row) -> JobRow:
    values = dict(row)
    values["overrides"] = json.loads(values["overrides"])
    values["status"] = JobStatus(values["status"])
    values["created_at"] = datetime.fromisoformat(values["created_at"])
    if values["finished_at"]:
        values["finished_at"] = datetime.fromisoformat(values["finished_at"])
    return JobRow(**values)
