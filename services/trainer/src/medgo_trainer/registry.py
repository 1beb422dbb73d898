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

import argparse
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from medgo_common.schemas.serving import AdapterRef, ServingManifest

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
class GateDecision:
    """What a gate says about a candidate; `reasons` explain a refusal (or a pass)."""

    passed: bool
    reasons: list[str] = field(default_factory=list)


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


EVAL_REPORT = "eval-report.json"


def report_gate(candidate_report: Path | None = None, baseline_report: Path | None = None,
                policy: Path | None = None) -> Gate:
    """The evaluation gate (`medgo_trainer.eval.gate.evaluate_gate`) as a registry `Gate`.

    Each checkpoint's report defaults to `<checkpoint path>/eval-report.json` (what
    `medgo-eval --out` writes beside the adapter). With nothing promoted yet there is no
    baseline to regress from, so the gate only requires the candidate's report to exist.
    """

    def gate(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        from medgo_trainer.eval.gate import GatePolicy, evaluate_gate
        from medgo_trainer.eval.report import EvalReport

        cand_path = candidate_report or Path(candidate.path) / EVAL_REPORT
        if not cand_path.is_file():
            return GateDecision(False, [f"no evaluation report for {candidate.id} at {cand_path}"
                                        " (run medgo-eval first)"])
        if baseline is None and baseline_report is None:
            return GateDecision(True, ["first promotion: no baseline to compare with"])
        base_path = baseline_report or Path(baseline.path) / EVAL_REPORT
        if not base_path.is_file():
            return GateDecision(False, [f"no baseline evaluation report at {base_path}"])
        decision = evaluate_gate(EvalReport.load(cand_path), EvalReport.load(base_path),
                                 GatePolicy.load(policy) if policy else None)
        return GateDecision(decision.passed, list(decision.reasons))

    return gate


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train registry {list,show,add}` and `medgo-train promote`."""
    registry = subparsers.add_parser(
        "registry", help="list, show or add registered checkpoints",
        description="Checkpoints with lineage, under MEDGO_TRAINER_MODEL_DIR.",
        epilog="examples:\n  medgo-train registry list\n  medgo-train registry show "
               "medgo-tiny-dpo-1a2b\n  medgo-train registry add --id medgo-tiny-dpo-1a2b "
               "--run var/runs/dpo --parent medgo-tiny-sft",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every checkpoint, oldest first").set_defaults(
        handler=lambda args: [c.to_dict() for c in _registry().checkpoints()])
    show = actions.add_parser("show", help="one checkpoint and its lineage")
    show.add_argument("checkpoint_id")
    show.set_defaults(handler=lambda args: [c.to_dict() for c in
                                            _registry().lineage(args.checkpoint_id)])
    add = actions.add_parser("add", help="register a finished stage run as a candidate")
    add.add_argument("--id", required=True, dest="checkpoint_id",
                     help="checkpoint id = the adapter name inference will serve")
    add.add_argument("--run", required=True, type=Path, help="the stage's --out directory")
    add.add_argument("--parent", help="the checkpoint this one was trained from")
    add.set_defaults(handler=_add)

    promote = subparsers.add_parser(
        "promote", help="gate a candidate on its evaluation, then serve it",
        description="Runs the evaluation gate (candidate vs. the promoted checkpoint); on a "
                    "pass writes <model_dir>/serving.json and retires the previous one.",
        epilog="example:\n  medgo-train promote medgo-tiny-dpo-1a2b --report var/eval/dpo.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    promote.add_argument("checkpoint_id")
    promote.add_argument("--report", type=Path, help=f"candidate report (default: <ckpt>/"
                                                     f"{EVAL_REPORT})")
    promote.add_argument("--baseline-report", type=Path, help="report of the promoted one")
    promote.add_argument("--policy", type=Path, help="gate policy YAML (default: eval's)")
    promote.set_defaults(handler=_promote)


def _registry() -> Registry:
    from medgo_trainer.settings import TrainerSettings

    return Registry(TrainerSettings().model_dir)


def _add(args: argparse.Namespace) -> dict[str, Any]:
    return register_run(_registry(), args.checkpoint_id, args.run, args.parent).to_dict()


def register_run(registry: Registry, checkpoint_id: str, run: Path, parent: str | None,
                 base: str | None = None) -> Checkpoint:
    """Register a finished stage run (its `--out` directory) as a candidate.

    `base` overrides the recipe's base when the run is served on a base that has since
    moved (medgo-tiny is built in a staging directory, then swapped into place).
    """
    import yaml

    try:
        recipe = yaml.safe_load((run / "recipe.resolved.yaml").read_text(encoding="utf-8"))
        record = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{run} is not a finished stage run ({exc})") from exc
    # DPO/KTO runs hold the adapter to serve on the raw base in `serving/`; a local base
    # is recorded absolute, since the inference launcher runs from another directory.
    served = run / "serving" if (run / "serving").is_dir() else run
    base_path = Path(base or recipe["base"])
    base_ref = str(base_path.resolve()) if base_path.exists() else str(base_path)
    return registry.register(
        checkpoint_id=checkpoint_id, parent=parent, base=base_ref,
        stage=recipe["stage"], path=served.resolve(), data_sha256=record["data_hash"],
        recipe=recipe, metrics=record["metrics"])


def _promote(args: argparse.Namespace) -> dict[str, Any]:
    from medgo_trainer.settings import TrainerSettings

    settings = TrainerSettings()
    gate = report_gate(args.report, args.baseline_report, args.policy)
    promoted = Registry(settings.model_dir).promote(
        args.checkpoint_id, gate=gate, manifest_path=settings.serving_manifest)
    return {"promoted": promoted.to_dict(), "manifest": str(settings.serving_manifest)}
