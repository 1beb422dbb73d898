"""Engine, sessions and schema migrations, all built from `FeedbackSettings`.

SQLite is tuned on every new connection for durability rather than speed: WAL with
`synchronous=FULL` means a commit returns only after the WAL is on disk, so a rating
that was answered 2xx survives a crash of the process or of the machine. Foreign keys
are off by default in SQLite and must be switched on per connection. The busy timeout
makes concurrent writers queue for the single write lock instead of failing at once.

Tables come from Alembic only (`upgrade_to_head`), never from `create_all`, so a
production database and a test database have the same history.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.orm import Session, sessionmaker

from medgo_feedback.settings import FeedbackSettings


def build_engine(settings: FeedbackSettings) -> Engine:
    """One pooled engine per app (or CLI run); SQLite gets its pragmas on connect."""
    if settings.is_sqlite:
        database = make_url(settings.database_url).database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            settings.database_url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            pool_size=settings.pool_size,
            pool_timeout=settings.pool_timeout_s,
        )
        event.listen(engine, "connect", _sqlite_pragmas(settings.sqlite_busy_timeout_ms))
        return engine
    return create_engine(
        settings.database_url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.pool_timeout_s,
        pool_pre_ping=True,
        connect_args={"connect_timeout": settings.connect_timeout_s},
    )


def _sqlite_pragmas(busy_timeout_ms: int):
    def on_connect(dbapi_connection, _record) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    return on_connect


def build_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    # expire_on_commit=False: routes serialise rows after committing them.
    return sessionmaker(engine, expire_on_commit=False)


def ping(engine: Engine) -> str | None:
    """Readiness: None when the database answers, else a short reason (no secrets)."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver failure means "not ready"
        return f"database unreachable ({type(exc).__name__})"
    return None


def safe_url(settings: FeedbackSettings) -> str:
    """The database URL with its password masked, for error messages and logs."""
    return make_url(settings.database_url).render_as_string(hide_password=True)


def describe_db_error(settings: FeedbackSettings, exc: Exception) -> str:
    """`<masked URL> (<first line of the driver's message>)` for a one-line error."""
    orig = getattr(exc, "orig", None)
    reason = str(orig or exc).strip().splitlines()[0][:200]
    return f"{safe_url(settings)} ({reason})"


def alembic_config(settings: FeedbackSettings) -> Config:
    """Alembic's config without an ini file; `env.py` takes the settings from here."""
    config = Config()
    config.set_main_option("script_location", "medgo_feedback:alembic")
    config.attributes["settings"] = settings
    return config


def upgrade_to_head(settings: FeedbackSettings, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent: a database at head is untouched)."""
    command.upgrade(alembic_config(settings), revision)
