"""Alembic environment: the URL comes from `FeedbackSettings`, like everything else.

`medgo_feedback.db.alembic_config` passes the settings in; the plain `alembic` command
(run from services/feedback with its alembic.ini) builds them from the environment.
"""

from __future__ import annotations

from alembic import context
from medgo_feedback.models import Base
from medgo_feedback.settings import FeedbackSettings
from sqlalchemy import create_engine, pool

settings: FeedbackSettings = context.config.attributes.get("settings") or FeedbackSettings()


def run_offline() -> None:
    context.configure(
        url=settings.database_url,
        target_metadata=Base.metadata,
        literal_binds=True,
        compare_type=True,
        render_as_batch=settings.is_sqlite,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    engine = create_engine(settings.database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=Base.metadata,
                compare_type=True,
                render_as_batch=settings.is_sqlite,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
