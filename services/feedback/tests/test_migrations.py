"""The schema comes only from Alembic: from empty, and from every earlier revision."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from medgo_feedback.db import alembic_config, upgrade_to_head
from medgo_feedback.models import Base
from medgo_feedback.settings import FeedbackSettings
from sqlalchemy import create_engine, inspect, text

REVISIONS = [
    rev.revision
    for rev in reversed(
        list(
            ScriptDirectory.from_config(
                alembic_config(FeedbackSettings(database_url="sqlite://"))
            ).walk_revisions()
        )
    )
]


def _diff(url: str) -> list:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_there_are_earlier_revisions_to_upgrade_from() -> None:
    assert REVISIONS[0] == "0001"
    assert len(REVISIONS) >= 2


def test_upgrade_from_empty_matches_the_models(empty_db_url, settings_for) -> None:
    settings = settings_for(empty_db_url)
    upgrade_to_head(settings)
    engine = create_engine(empty_db_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert version == REVISIONS[-1]
    assert {"interactions", "ratings", "export_audit"} <= tables
    assert _diff(empty_db_url) == []


@pytest.mark.parametrize("start", REVISIONS[:-1])
def test_upgrade_from_each_earlier_revision_keeps_data(start, empty_db_url, settings_for) -> None:
    settings = settings_for(empty_db_url)
    upgrade_to_head(settings, start)
    interaction_id = uuid.uuid4()
    now = datetime.now(UTC).replace(tzinfo=None)
    engine = create_engine(empty_db_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO interactions (id, created_at, received_at, user_id, "
                    "checkpoint_id, messages, prompt_key, response, latency_ms, prompt_tokens, "
                    "completion_tokens) VALUES (:id, :now, :now, 'u', 'ck', '[]', 'k', 'r', 1, "
                    "1, 1)"
                ),
                {"id": interaction_id.hex if engine.dialect.name == "sqlite" else interaction_id,
                 "now": now},
            )
        upgrade_to_head(settings)
        with engine.connect() as connection:
            kept = connection.execute(text("SELECT count(*) FROM interactions")).scalar()
    finally:
        engine.dispose()
    assert kept == 1
    assert _diff(empty_db_url) == []


def test_downgrade_to_base_and_back(empty_db_url, settings_for) -> None:
    settings = settings_for(empty_db_url)
    upgrade_to_head(settings)
    command.downgrade(alembic_config(settings), "base")
    engine = create_engine(empty_db_url)
    try:
        assert not {"interactions", "ratings"} & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    upgrade_to_head(settings)
    assert _diff(empty_db_url) == []
