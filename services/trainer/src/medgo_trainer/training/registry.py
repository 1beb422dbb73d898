"""The checkpoint registry: lineage and status of every checkpoint the trainer made.

One SQLite file under the model directory (`<model_dir>/registry.sqlite3`), so the
CLI, the job API and a weekly CronJob on a shared volume see the same history without
a server. Each checkpoint records where it came from (parent, base model, the SHA-256
of its training data, the resolved recipe) and what it scored (metrics), and moves
candidate → promoted → retired. `promote` is the only way to change what inference
serves: it runs the evaluation gate first and, only when it passes, writes the
`ServingManifest` the inference launcher reads and retires the previous promotion —
in one transaction, so a failed gate or write leaves both the registry and the
manifest as they were.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_trainer.evaluation.gate import GateDecision

REGISTRY_FILE = "registry.sqlite3"
_BY_ID = "SELECT * FROM checkpoints WHERE id = ?"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    id TEXT PRIMARY KEY,
    parent TEXT REFERENCES checkpoints(id),
    base TEXT NOT NULL,
    stage TEXT NOT NULL,
    path TEXT NOT NULL,
    data_sha256 TEXT NOT NULL,
    recipe TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_at TEXT NOT NULL,
    status TEXT NOT NULL
)
"""


class Status(StrEnum):
    candidate = "candidate"
    promoted = "promoted"
    retired = "retired"


class RegistryError(ValueError):
    """An operation the registry refuses (unknown id, duplicate id, failed gate)."""


class UnknownCheckpointError(RegistryError, LookupError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    id: str
    parent: str | None
    base: str
    stage: str
    path: str
    data_sha256: str
    recipe: dict[str, Any]
    metrics: dict[str, Any]
    created_at: str
    status: Status

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "status": str(self.status)}


#: A gate compares a candidate with the checkpoint it would replace (None at first).
Gate = Callable[[Checkpoint, Checkpoint | None], GateDecision]


class GateFailedError(RegistryError):
    def __init__(self, checkpoint_id: str, decision: GateDecision) -> None:
        reasons = "; ".join(decision.reasons) or "no reason given"
        super().__init__(f"checkpoint {checkpoint_id!r} failed the evaluation gate: {reasons}")
        self.decision = decision


class Registry:
    """Registry operations over one SQLite file; cheap to construct per call."""

    def __init__(self, model_dir: Path) -> None:
        self.model_dir = model_dir
        self.path = model_dir / REGISTRY_FILE

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in autocommit mode; an explicit BEGIN is committed on success."""
        self.model_dir.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute(_SCHEMA)
            yield conn
            if conn.in_transaction:
                conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()

    def register(
        self,
        *,
        checkpoint_id: str,
        base: str,
        stage: str,
        path: Path,
        data_sha256: str,
        recipe: dict[str, Any],
        metrics: dict[str, Any] | None = None,
        parent: str | None = None,
    ) -> Checkpoint:
        """Record a new candidate; its parent (if any) must already be registered."""
        AdapterRef(name=checkpoint_id, path=str(path))  # ids are served as adapter names
        created = datetime.now(UTC).isoformat(timespec="seconds")
        row = (checkpoint_id, parent, base, stage, str(path), data_sha256,
               json.dumps(recipe, sort_keys=True, default=str), json.dumps(metrics or {}),
               created, Status.candidate.value)
        with self._connect() as conn:
            if parent is not None and not _exists(conn, parent):
                raise UnknownCheckpointError(f"parent checkpoint {parent!r} is not registered")
            try:
                conn.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?,?,?,?)", row)
            except sqlite3.IntegrityError as exc:
                raise RegistryError(f"checkpoint {checkpoint_id!r} is already registered") from exc
        return self.get(checkpoint_id)

    def get(self, checkpoint_id: str) -> Checkpoint:
        with self._connect() as conn:
            row = conn.execute(_BY_ID, (checkpoint_id,)).fetchone()
        if row is None:
            raise UnknownCheckpointError(f"unknown checkpoint {checkpoint_id!r}")
        return _checkpoint(row)

    def checkpoints(self) -> list[Checkpoint]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM checkpoints ORDER BY created_at, rowid").fetchall()
        return [_checkpoint(r) for r in rows]

    def promoted(self) -> Checkpoint | None:
        with self._connect() as conn:
            row = conn.execute("SELECT * FROM checkpoints WHERE status = 'promoted'").fetchone()
        return _checkpoint(row) if row else None

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The checkpoint and its ancestors, newest first."""
        chain = [self.get(checkpoint_id)]
        while chain[-1].parent is not None:
            chain.append(self.get(chain[-1].parent))
        return chain

    def promote(self, checkpoint_id: str, *, gate: Gate, manifest_path: Path) -> Checkpoint:
        """Gate, then serve `checkpoint_id`: manifest written, previous one retired."""
        candidate = self.get(checkpoint_id)
        if candidate.status is Status.promoted:
            raise RegistryError(f"checkpoint {checkpoint_id!r} is already promoted")
        baseline = self.promoted()
        decision = gate(candidate, baseline)
        if not decision.passed:
            raise GateFailedError(checkpoint_id, decision)
        manifest = ServingManifest(
            checkpoint_id=candidate.id,
            base_model=candidate.base,
            adapters=[AdapterRef(name=candidate.id, path=candidate.path)],
        )
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("UPDATE checkpoints SET status = 'retired' WHERE status = 'promoted'")
            conn.execute("UPDATE checkpoints SET status = 'promoted' WHERE id = ?", (candidate.id,))
            manifest.save(manifest_path)  # an exception here rolls the status change back
        return self.get(checkpoint_id)


def _exists(conn: sqlite3.Connection, checkpoint_id: str) -> bool:
    return conn.execute(_BY_ID, (checkpoint_id,)).fetchone() is not None


def _checkpoint(row: sqlite3.Row) -> Checkpoint:
    values = dict(row)
    values["recipe"] = json.loads(values["recipe"])
    values["metrics"] = json.loads(values["metrics"])
    values["status"] = Status(values["status"])
    return Checkpoint(**values)
