"""The checkpoint registry: lineage and status of every checkpoint the trainer made.

Each checkpoint records where it came from (parent, base model, the SHA-256 of its
training data, the resolved recipe) and what it scored (metrics), and moves candidate →
promoted → retired. The registry is a database (`registry_db.py`): SQLite under the
model directory locally (`<model_dir>/registry.sqlite3`), PostgreSQL in production
(`MEDGO_TRAINER_REGISTRY_URL`, its own schema on the feedback database server), so the
CLI, the job API and the weekly CronJob share one transactional history.

`promote` is the only way to change what inference serves: in one transaction it locks
the promotion pointer, runs the evaluation gate against the checkpoint promoted now,
and only when it passes writes the `ServingManifest` the inference launcher reads,
swaps the pointer (compare-and-swap) and retires the previous promotion. So a failed
gate or write leaves both the registry and the manifest as they were, and two
promotions at once are gated one after the other, never both against the same baseline.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_trainer.evaluation.gate import GateDecision
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training import registry_db
from medgo_trainer.training.registry_db import checkpoints as _T
from medgo_trainer.training.registry_db import promotion as _P
from sqlalchemy import Connection, Row, func, insert, select, update
from sqlalchemy.exc import IntegrityError


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
    """Registry operations on one database; cheap to construct per call (the engine is
    the process's, built and migrated on first use)."""

    def __init__(self, model_dir: Path, url: str | None = None,
                 schema: str = registry_db.DEFAULT_SCHEMA) -> None:
        self.model_dir = model_dir
        self.url = url or registry_db.sqlite_url(model_dir)
        self.schema = schema

    @classmethod
    def from_settings(cls, settings: TrainerSettings) -> Registry:
        """The registry the settings name: `registry_url`, else SQLite in `model_dir`."""
        return cls(settings.model_dir, settings.registry_url, settings.registry_schema)

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[Connection]:
        """One transaction, committed on success; `write` takes SQLite's write lock first."""
        if self.url.startswith("sqlite:"):
            self.model_dir.mkdir(parents=True, exist_ok=True)
        engine = registry_db.engine_for(self.url, self.schema)
        mode = {registry_db.SQLITE_BEGIN: "IMMEDIATE" if write else "DEFERRED"}
        with engine.connect().execution_options(**mode) as conn, conn.begin():
            yield conn

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
        with self._transaction(write=True) as conn:
            if parent is not None and _row(conn, parent) is None:
                raise UnknownCheckpointError(f"parent checkpoint {parent!r} is not registered")
            if _row(conn, checkpoint_id) is not None:
                raise RegistryError(f"checkpoint {checkpoint_id!r} is already registered")
            seq = conn.execute(select(func.coalesce(func.max(_T.c.seq), 0) + 1)).scalar_one()
            try:
                conn.execute(insert(_T).values(
                    id=checkpoint_id, parent=parent, base=base, stage=stage, path=str(path),
                    data_sha256=data_sha256,
                    recipe=json.dumps(recipe, sort_keys=True, default=str),
                    metrics=json.dumps(metrics or {}), created_at=created,
                    status=Status.candidate.value, seq=seq))
            except IntegrityError as exc:  # registered by someone else meanwhile
                raise RegistryError(f"checkpoint {checkpoint_id!r} is already registered") from exc
        return self.get(checkpoint_id)

    def get(self, checkpoint_id: str) -> Checkpoint:
        with self._transaction() as conn:
            row = _row(conn, checkpoint_id)
        if row is None:
            raise UnknownCheckpointError(f"unknown checkpoint {checkpoint_id!r}")
        return _checkpoint(row)

    def checkpoints(self) -> list[Checkpoint]:
        with self._transaction() as conn:
            rows = conn.execute(select(_T).order_by(_T.c.seq, _T.c.id)).all()
        return [_checkpoint(r) for r in rows]

    def promoted(self) -> Checkpoint | None:
        with self._transaction() as conn:
            row = conn.execute(select(_T).where(_T.c.status == Status.promoted.value)).first()
        return _checkpoint(row) if row else None

    def lineage(self, checkpoint_id: str) -> list[Checkpoint]:
        """The checkpoint and its ancestors, newest first."""
        chain = [self.get(checkpoint_id)]
        while chain[-1].parent is not None:
            chain.append(self.get(chain[-1].parent))
        return chain

    def promote(self, checkpoint_id: str, *, gate: Gate, manifest_path: Path) -> Checkpoint:
        """Gate, then serve `checkpoint_id`: manifest written, previous one retired.

        All in one transaction that first locks the promotion pointer (a row lock on
        PostgreSQL, the write lock on SQLite): a concurrent promote waits, then gates
        against what this one promoted, never against the same old baseline. The switch
        is a compare-and-swap on the pointer, and a failed gate or manifest write leaves
        registry and manifest as they were.
        """
        with self._transaction(write=True) as conn:
            pointer = conn.execute(select(_P.c.checkpoint_id).where(_P.c.id == 1)
                                   .with_for_update()).scalar_one()
            row = _row(conn, checkpoint_id)
            if row is None:
                raise UnknownCheckpointError(f"unknown checkpoint {checkpoint_id!r}")
            candidate = _checkpoint(row)
            if candidate.status is Status.promoted:
                raise RegistryError(f"checkpoint {checkpoint_id!r} is already promoted")
            baseline = _checkpoint(_row(conn, pointer)) if pointer is not None else None
            decision = gate(candidate, baseline)
            if not decision.passed:
                raise GateFailedError(checkpoint_id, decision)
            swapped = conn.execute(update(_P).where(
                _P.c.id == 1, _P.c.checkpoint_id.is_not_distinct_from(pointer)
            ).values(checkpoint_id=candidate.id))
            if swapped.rowcount != 1:
                raise RegistryError("the promoted checkpoint changed during the promotion; "
                                    "run promote again to gate against the new one")
            conn.execute(update(_T).where(_T.c.status == Status.promoted.value)
                         .values(status=Status.retired.value))
            conn.execute(update(_T).where(_T.c.id == candidate.id)
                         .values(status=Status.promoted.value))
            ServingManifest(
                checkpoint_id=candidate.id,
                base_model=candidate.base,
                adapters=[AdapterRef(name=candidate.id, path=candidate.path)],
            ).save(manifest_path)  # an exception here rolls the status change back
        return self.get(checkpoint_id)


def _row(conn: Connection, checkpoint_id: str) -> Row | None:
    return conn.execute(select(_T).where(_T.c.id == checkpoint_id)).first()


def _checkpoint(row: Row) -> Checkpoint:
    values = dict(row._mapping)
    values.pop("seq")
    values["recipe"] = json.loads(values["recipe"])
    values["metrics"] = json.loads(values["metrics"])
    values["status"] = Status(values["status"])
    return Checkpoint(**values)
