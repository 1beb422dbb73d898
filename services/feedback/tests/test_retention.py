"""The retention policy (retention.py) on SQLite and a real PostgreSQL: the purge removes
exactly the interactions past the period with their ratings and idempotency keys, in
batches, idempotently; the API and the admin CLI say what is due without deleting it;
the oldest-record gauge reads the age of what is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from medgo_feedback import retention, store
from medgo_feedback.cli import main
from medgo_feedback.db import build_engine, build_sessionmaker
from medgo_feedback.models import Interaction, Rating, RatingKey
from medgo_feedback.settings import FeedbackSettings
from pydantic import ValidationError
from sqlalchemy import func, select

TRAINER_AUTH = {"Authorization": "Bearer tr-test-token"}  # conftest.TOKENS["trainer"]
NOW = datetime.now(UTC)
DAY_S = 86400


def _count(session, model) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model))


def _seed(client, make_record, make_rating, ages_days: list[float]) -> list[str]:
    """One interaction per age (days before NOW), each rated by two clinicians with an
    Idempotency-Key; their ids in the same order."""
    records = [make_record(created_at=(NOW - timedelta(days=age)).isoformat())
               for age in ages_days]
    assert client.post("/v1/interactions", json={"records": records}).status_code == 201
    for body in records:
        for rater in ("dr-01", "dr-02"):
            response = client.post("/v1/ratings", json=make_rating(body["id"], rater=rater),
                                   headers={"Idempotency-Key": f"{body['id']}-{rater}"})
            assert response.status_code == 201
    return [body["id"] for body in records]


def _kept(session) -> set[str]:
    session.expire_all()
    return {str(i) for i in session.scalars(select(Interaction.id))}


def test_purge_removes_exactly_what_is_past_the_period(
    settings, client, session, make_record, make_rating
) -> None:
    ids = _seed(client, make_record, make_rating, [900, 400, 366, 364, 30, 0])
    policy = settings.model_copy(update={"retention_days": 365, "purge_batch_rows": 2})
    factory = build_sessionmaker(build_engine(policy))
    looked = retention.report(session=session, settings=policy, now=NOW)
    assert (looked.due.interactions, looked.due.ratings) == (3, 6)
    assert _kept(session) == set(ids)  # looking deletes nothing

    cutoff = NOW - timedelta(days=365)
    first = retention.purge_batch(factory=factory, settings=policy, cutoff=cutoff)
    assert (first.interactions, first.ratings) == (2, 4)  # one batch, oldest first
    assert _kept(session) == set(ids[2:])
    one = retention.purge_due(factory=factory, settings=policy, now=NOW, budget_s=0)
    assert (one.purged.interactions, one.due.interactions) == (1, 0)  # one batch a call
    again = retention.purge_due(factory=factory, settings=policy, now=NOW)
    assert (again.purged.interactions, again.purged.ratings) == (0, 0)  # idempotent

    assert _kept(session) == set(ids[3:])
    assert {str(i) for i in session.scalars(select(Rating.interaction_id))} == set(ids[3:])
    assert _count(session, RatingKey) == 6
    assert again.oldest_kept == store.oldest_interaction_at(session=session)
    assert abs((NOW - again.oldest_kept).total_seconds() - 364 * DAY_S) < 1
    assert again.export_copy_cutoff == NOW - timedelta(days=policy.export_copy_retention_days)


def test_api_reports_then_purges(
    settings_for, db_url, session, make_record, make_rating
) -> None:
    from fastapi.testclient import TestClient
    from medgo_feedback.app import create_app

    policy = settings_for(db_url, retention_days=30, export_copy_retention_days=7,
                          purge_batch_rows=1)
    with TestClient(create_app(policy), headers=TRAINER_AUTH) as client:
        ids = _seed(client, make_record, make_rating, [60, 45, 10])
        look = client.get("/v1/retention").json()
        assert look["due"] == {"interactions": 2, "ratings": 4}
        assert look["purged"] == {"interactions": 0, "ratings": 0}
        assert (look["retention_days"], look["export_copy_retention_days"]) == (30, 7)
        assert _kept(session) == set(ids)
        first = client.post("/v1/retention/purge").json()  # batches of 1 within one call
        assert (first["purged"], first["due"]) == (
            {"interactions": 2, "ratings": 4}, {"interactions": 0, "ratings": 0})
        assert client.post("/v1/retention/purge").json()["purged"]["interactions"] == 0
        assert _kept(session) == {ids[2]}
        age = _gauge(client, "medgo_feedback_oldest_record_age_seconds")
        assert abs(age - 10 * DAY_S) < 600  # the purge updated the gauge at once
        assert _gauge(client, 'medgo_feedback_retention_period_seconds{data="records"}') == (
            30 * DAY_S)
        assert _gauge(client,
                      'medgo_feedback_retention_period_seconds{data="export_copies"}') == (
            7 * DAY_S)


def _gauge(client, sample: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{sample} not exposed")


@pytest.mark.parametrize("backend", ["sqlite"])
def test_gauge_reads_the_oldest_record_and_zero_when_empty(
    client, settings, make_record, make_rating
) -> None:
    oldest = client.app.state.oldest_record
    factory = build_sessionmaker(build_engine(settings))
    oldest.refresh(factory)
    assert _gauge(client, "medgo_feedback_oldest_record_age_seconds") == 0.0
    _seed(client, make_record, make_rating, [400, 2])
    oldest.refresh(factory)
    assert abs(_gauge(client, "medgo_feedback_oldest_record_age_seconds") - 400 * DAY_S) < 600


def test_admin_cli_dry_run_then_purge(
    monkeypatch, settings, client, session, make_record, make_rating, capsys
) -> None:
    monkeypatch.setenv("MEDGO_FEEDBACK_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("MEDGO_FEEDBACK_RETENTION_DAYS", "100")
    monkeypatch.setenv("MEDGO_FEEDBACK_PURGE_BATCH_ROWS", "1")
    ids = _seed(client, make_record, make_rating, [300, 200, 50])
    assert main(["purge", "--dry-run"]) == 0
    assert "dry run: would purge 2 interactions and 4 ratings" in capsys.readouterr().out
    assert _kept(session) == set(ids)
    assert main(["purge"]) == 0
    captured = capsys.readouterr()
    assert "purged 2 interactions so far, 0 due" in captured.err  # progress
    assert "purged 2 interactions and 4 ratings created before" in captured.out
    assert _kept(session) == {ids[2]}
    assert main(["purge"]) == 0  # idempotent
    assert "purged 0 interactions and 0 ratings" in capsys.readouterr().out


def test_copies_may_not_outlive_the_records() -> None:
    with pytest.raises(ValidationError, match="must not exceed retention_days"):
        FeedbackSettings(retention_days=30, export_copy_retention_days=60)
    with pytest.raises(ValidationError, match="greater than or equal to 7"):
        FeedbackSettings(export_copy_retention_days=1)
    defaults = FeedbackSettings()
    assert (defaults.retention_days, defaults.export_copy_retention_days) == (365, 30)
