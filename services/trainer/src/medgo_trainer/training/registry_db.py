"""Where the checkpoint registry lives: its tables, engines and migrations.

SQLite under the model directory is the local default (`<model_dir>/registry.sqlite3`);
production points `MEDGO_TRAINER_REGISTRY_URL` at PostgreSQL (its own schema,
`MEDGO_TRAINER_REGISTRY_SCHEMA`, on the feedback database server), so the job API and
the weekly CronJob share one transactional registry instead of a SQLite file on a
ReadWriteMany volume. The schema comes from the Alembic migrations in
`registry_migrations/`, applied on first use in each process; a registry file written
before the migrations existed is adopted as it is (0001).

On SQLite every write transaction starts with `BEGIN IMMEDIATE` (the database's write
lock, taken before anything is read), so a read-then-write such as `promote` cannot
interleave with another writer; reads start deferred and never block a writer. On
PostgreSQL `promote` takes a row lock (`SELECT ... FOR UPDATE`) instead.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    Column,
    Connection,
    Engine,
    ForeignKey,
    Integer,
    MetaData,
    Table,
    Text,
    create_engine,
    event,
    make_url,
)
from sqlalchemy.pool import NullPool

REGISTRY_FILE = "registry.sqlite3"
DEFAULT_SCHEMA = "medgo_registry"  # as TrainerSettings.registry_schema
MIGRATIONS = "medgo_trainer.training:registry_migrations"
#: Execution option naming how a SQLite transaction begins (DEFERRED or IMMEDIATE).
SQLITE_BEGIN = "medgo_sqlite_begin"
_MIGRATION_LOCK = 0x6D656467  # any constant key: "medg"

metadata = MetaData()
checkpoints = Table(
    "checkpoints", metadata,
    Column("id", Text, primary_key=True),
    Column("parent", Text, ForeignKey("checkpoints.id")),
    Column("base", Text, nullable=False),
    Column("stage", Text, nullable=False),
    Column("path", Text, nullable=False),
    Column("data_sha256", Text, nullable=False),
    Column("recipe", Text, nullable=False),  # JSON
    Column("metrics", Text, nullable=False),  # JSON
    Column("created_at", Text, nullable=False),  # ISO 8601, seconds, UTC
    Column("status", Text, nullable=False),
    Column("seq", Integer),  # registration order ("registry list", oldest first)
)
#: One row (id 1): the promoted checkpoint. `promote` locks it and swaps its value only
#: if it still holds the baseline the gate was shown, so two promotes cannot both win.
promotion = Table(
    "promotion", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("checkpoint_id", Text, ForeignKey("checkpoints.id")),
)

_lock = threading.Lock()
_engines: dict[tuple[str, str], Engine] = {}


def sqlite_url(model_dir: Path) -> str:
    return f"sqlite:///{model_dir / REGISTRY_FILE}"


def engine_for(url: str, schema: str) -> Engine:
    """The process's engine for `url` (PostgreSQL: tables in `schema`), migrated to head."""
    key = (url, schema)
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _build(url, schema)
            _upgrade(engine, schema)
            _engines[key] = engine
    return engine


def _build(url: str, schema: str) -> Engine:
    if make_url(url).get_backend_name() == "sqlite":
        # No pool: a connection per transaction, as cheap as opening the file (and no
        # file handles held open between CLI calls or across tests).
        engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun below
            dbapi_connection.execute("PRAGMA foreign_keys = ON")

        @event.listens_for(engine, "begin")
        def _begin(connection: Connection) -> None:
            mode = connection.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
            connection.exec_driver_sql(f"BEGIN {mode}")

        return engine
    # Unqualified names resolve in the registry's schema, the migrations' too.
    return create_engine(url, pool_pre_ping=True,
                         connect_args={"options": f"-csearch_path={schema}"})


def _upgrade(engine: Engine, schema: str) -> None:
    """Bring the registry's tables to the newest migration (a no-op when they are)."""
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    # One transaction, one migrator at a time (the job API and the CronJob may start
    # together): SQLite's write lock, or a transaction-scoped advisory lock.
    with engine.connect().execution_options(**{SQLITE_BEGIN: "IMMEDIATE"}) as connection:
        if connection.dialect.name == "postgresql":
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
            connection.exec_driver_sql(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
