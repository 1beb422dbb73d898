"""Fixtures: every database test runs on SQLite *and* on a real throwaway PostgreSQL.

The PostgreSQL server is started once per session from the machine's binaries
(`medgo_testing.postgres`) and each test gets its own database, cloned from a template
that was migrated once. Where no PostgreSQL binaries exist the PostgreSQL half is
skipped with that reason; the SQLite half always runs.
"""

from __future__ import annotations

import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from medgo_feedback.app import create_app
from medgo_feedback.db import build_engine, upgrade_to_head
from medgo_feedback.settings import FeedbackSettings
from medgo_testing.postgres import find_bindir, throwaway_postgres
from sqlalchemy import make_url
from sqlalchemy.orm import Session

TOKENS = {"gateway": "gw-test-token", "trainer": "tr-test-token"}
GATEWAY_AUTH = {"Authorization": f"Bearer {TOKENS['gateway']}"}
# The shared client exercises every route with one token, so the test callers hold every
# scope; least privilege with the production defaults is tested in test_scopes.py.
SCOPES = {"gateway": ["*"], "trainer": ["*"]}
TEMPLATE_DB = "feedback_template"


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    if find_bindir() is None:
        pytest.skip("no PostgreSQL binaries (pg_config / /usr/lib/postgresql/15/bin)")
    # Not under pytest's tmp dir: its parents are private to root, and the server runs
    # as the postgres user.
    with (
        tempfile.TemporaryDirectory(prefix="medgo-feedback-pg-") as directory,
        throwaway_postgres(Path(directory), durable=False) as url,
    ):
        with psycopg.connect(_libpq(url), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {TEMPLATE_DB}")
        upgrade_to_head(_settings(make_url(url).set(database=TEMPLATE_DB)))
        yield url


@contextmanager
def _pg_database(admin_url: str, *, template: str | None) -> Iterator[str]:
    name = f"t_{uuid.uuid4().hex[:16]}"
    clause = f" TEMPLATE {template}" if template else ""
    with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}{clause}")
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(_libpq(admin_url), autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _settings(url: Any, **overrides: Any) -> FeedbackSettings:
    return FeedbackSettings(
        database_url=url if isinstance(url, str) else url.render_as_string(hide_password=False),
        service_tokens=TOKENS,
        service_scopes=overrides.pop("service_scopes", SCOPES),
        sqlite_busy_timeout_ms=300,
        max_body_bytes=64 * 1024,
        max_batch_records=20,
        pool_timeout_s=2,
        **overrides,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A database with no tables at all (for the migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'feedback.db'}"
        return
    with _pg_database(request.getfixturevalue("pg_admin_url"), template=None) as url:
        yield url


@pytest.fixture
def db_url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database migrated to head."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'feedback.db'}"
        upgrade_to_head(_settings(url))
        yield url
        return
    with _pg_database(request.getfixturevalue("pg_admin_url"), template=TEMPLATE_DB) as url:
        yield url


@pytest.fixture
def settings(db_url: str) -> FeedbackSettings:
    return _settings(db_url)


@pytest.fixture
def client(settings: FeedbackSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers=GATEWAY_AUTH) as test_client:
        yield test_client


@pytest.fixture
def session(settings: FeedbackSettings) -> Iterator[Session]:
    """A session on the same database, to check what the service really wrote."""
    engine = build_engine(settings)
    with Session(engine) as db_session:
        yield db_session
    engine.dispose()


def record(**overrides: Any) -> dict[str, Any]:
    """A valid, redacted interaction record as the gateway sends it (JSON)."""
    body = {
        "id": str(uuid.uuid4()),
        "created_at": datetime.now(UTC).isoformat(),
        "user_id": "u-7f3a",
        "department": "心内科",
        "checkpoint_id": "medgo-tiny-sft",
        "adapter": "medgo-tiny-sft",
        "messages": [{"role": "user", "content": "高血压患者可以服用布洛芬吗？"}],
        "response": "布洛芬可能升高血压，应在医生指导下短期使用。",
        "finish_reason": "stop",
        "latency_ms": 812.5,
        "prompt_tokens": 21,
        "completion_tokens": 30,
    }
    return {**body, **overrides}


def rating(interaction_id: str, **overrides: Any) -> dict[str, Any]:
    body = {"interaction_id": interaction_id, "rater": "dr-01", "verdict": "acceptable"}
    return {**body, **overrides}


@pytest.fixture
def make_record() -> Callable[..., dict[str, Any]]:
    return record


@pytest.fixture
def make_rating() -> Callable[..., dict[str, Any]]:
    return rating


@pytest.fixture
def settings_for() -> Callable[..., FeedbackSettings]:
    """Settings for an arbitrary URL with the test tokens (CLI and process tests)."""
    return _settings


@pytest.fixture
def service_env(settings: FeedbackSettings) -> dict[str, str]:
    """The environment that configures a `medgo-feedback` process like `settings`."""
    return {
        "MEDGO_FEEDBACK_DATABASE_URL": settings.database_url,
        "MEDGO_FEEDBACK_SERVICE_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items()),
        "MEDGO_FEEDBACK_SERVICE_SCOPES": json.dumps(SCOPES),
        "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the test tokens are short
    }


@pytest.fixture
def gateway_auth() -> dict[str, str]:
    return dict(GATEWAY_AUTH)
