"""training/registry_db.py: the registry on SQLite and on a real PostgreSQL - the same
behaviour, migrations that adopt a registry written before them, and promotions that
cannot both win.

The PostgreSQL half starts a throwaway server from the machine's binaries
(`medgo_testing.postgres`, as the feedback tests do) and is skipped where there are none.
"""

from __future__ import annotations

import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_testing.postgres import find_bindir, throwaway_postgres
from medgo_trainer.training.registry import (
    Checkpoint,
    GateDecision,
    GateFailedError,
    Registry,
    Status,
)
from sqlalchemy import make_url


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if find_bindir() is None:
        pytest.skip("no PostgreSQL binaries (pg_config / /usr/lib/postgresql/15/bin)")
    # Not under pytest's tmp dir: its parents are private to root, and the server runs
    # as the postgres user.
    with (tempfile.TemporaryDirectory(prefix="medgo-registry-pg-") as directory,
          throwaway_postgres(Path(directory), durable=False) as url):
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def registry(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Registry]:
    """An empty registry: SQLite in the model directory, or a fresh PostgreSQL database
    (its own schema, as in production)."""
    if request.param == "sqlite":
        yield Registry(tmp_path)
        return
    admin = request.getfixturevalue("pg_admin_url")
    name = f"r_{uuid.uuid4().hex[:12]}"
    libpq = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield Registry(tmp_path, make_url(admin).set(database=name).render_as_string(
        hide_password=False), schema="medgo_registry")


def _register(reg: Registry, cid: str, parent: str | None = None, **metrics: float) -> None:
    reg.register(checkpoint_id=cid, parent=parent, base="/models/base", stage="dpo",
                 path=Path(f"/models/{cid}"), data_sha256="ab" * 32, recipe={},
                 metrics=metrics)


def _passing(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
    return GateDecision(True, [])


def test_lineage_order_and_promotion_on_both_databases(registry: Registry,
                                                       tmp_path: Path) -> None:
    for cid, parent in (("sft", None), ("dpo-2", "sft"), ("dpo-1", "sft")):
        _register(registry, cid, parent)
    assert [c.id for c in registry.checkpoints()] == ["sft", "dpo-2", "dpo-1"]  # registered
    registry.promote("sft", gate=_passing, manifest_path=tmp_path / "serving.json")
    registry.promote("dpo-1", gate=_passing, manifest_path=tmp_path / "serving.json")
    assert registry.promoted().id == "dpo-1"
    assert registry.get("sft").status is Status.retired
    assert [c.id for c in registry.lineage("dpo-1")] == ["dpo-1", "sft"]


def test_two_concurrent_promotes_cannot_both_win(registry: Registry, tmp_path: Path) -> None:
    """Two promotions race with a gate that passes only an improvement on the baseline
    it is shown. Without the lock both would be gated against `base` (0.5) and pass, and
    the slower one - the worse checkpoint - would end up served. With it the second is
    gated against the first's result: whatever the order, `better` is served, the
    manifest says so, and exactly one checkpoint is promoted."""
    manifest = tmp_path / "serving.json"
    _register(registry, "base", score=0.5)
    _register(registry, "better", "base", score=0.7)
    _register(registry, "worse", "base", score=0.6)
    registry.promote("base", gate=_passing, manifest_path=manifest)
    first_in_gate = threading.Event()
    seen: dict[str, str | None] = {}
    outcome: dict[str, str] = {}

    def improves(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        seen[candidate.id] = baseline.id if baseline else None
        if not first_in_gate.is_set():
            first_in_gate.set()
            # Hold the gate open: a promote that is not serialised runs its gate now.
            threading.Event().wait(0.5)
        ok = baseline is None or candidate.metrics["score"] > baseline.metrics["score"]
        return GateDecision(ok, [f"{candidate.id} vs {baseline and baseline.id}"])

    def promote(cid: str) -> None:
        try:
            registry.promote(cid, gate=improves, manifest_path=manifest)
            outcome[cid] = "promoted"
        except GateFailedError:
            outcome[cid] = "refused"

    threads = [threading.Thread(target=promote, args=(cid,)) for cid in ("worse", "better")]
    threads[0].start()
    first_in_gate.wait(30)
    threads[1].start()
    for thread in threads:
        thread.join(60)

    assert sorted(seen.values(), key=str) != ["base", "base"], seen  # not the same baseline
    assert registry.promoted().id == "better"
    assert ServingManifest.load(manifest).checkpoint_id == "better"
    statuses = {c.id: c.status for c in registry.checkpoints()}
    assert list(statuses.values()).count(Status.promoted) == 1
    assert outcome["better"] == "promoted"


def test_a_registry_written_before_the_migrations_is_adopted(tmp_path: Path) -> None:
    """The SQLite file of the previous registry (no Alembic table) keeps its history,
    its order and its promoted checkpoint."""
    legacy = sqlite3.connect(tmp_path / "registry.sqlite3")
    legacy.execute("""CREATE TABLE checkpoints (id TEXT PRIMARY KEY, parent TEXT REFERENCES
        checkpoints(id), base TEXT NOT NULL, stage TEXT NOT NULL, path TEXT NOT NULL,
        data_sha256 TEXT NOT NULL, recipe TEXT NOT NULL, metrics TEXT NOT NULL,
        created_at TEXT NOT NULL, status TEXT NOT NULL)""")
    for cid, status in (("z-first", "retired"), ("a-second", "promoted")):
        legacy.execute("INSERT INTO checkpoints VALUES (?,?,?,?,?,?,?,?,?,?)",
                       (cid, None, "/b", "sft", f"/m/{cid}", "0" * 64, "{}", "{}",
                        "2026-11-30T02:00:00+00:00", status))
    legacy.commit()
    legacy.close()
    registry = Registry(tmp_path)
    assert [c.id for c in registry.checkpoints()] == ["z-first", "a-second"]
    _register(registry, "third", "a-second", score=1.0)
    seen = []

    def records(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        seen.append(baseline and baseline.id)
        return GateDecision(True, [])

    registry.promote("third", gate=records, manifest_path=tmp_path / "serving.json")
    assert seen == ["a-second"]  # the adopted promotion is the baseline
    assert registry.get("a-second").status is Status.retired
