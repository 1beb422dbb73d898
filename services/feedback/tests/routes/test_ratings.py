"""POST /v1/ratings: create, update, idempotent replay, and every refusal."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from medgo_feedback.models import Interaction, Rating
from sqlalchemy import func, make_url, select


@pytest.fixture
def interaction_id(client, make_record) -> str:
    body = make_record()
    assert client.post("/v1/interactions", json=body).status_code == 201
    return body["id"]


def _ratings(session) -> list[Rating]:
    session.expire_all()
    return list(session.scalars(select(Rating).order_by(Rating.id)))


def test_create_then_update_keeps_one_rating_per_rater(
    client, session, interaction_id, make_rating
) -> None:
    first = client.post("/v1/ratings", json=make_rating(interaction_id))
    assert first.status_code == 201
    assert first.json()["outcome"] == "created"
    changed = make_rating(
        interaction_id,
        verdict="unacceptable",
        reasons=["wrong_drug_or_dose", "factual_error", "factual_error"],
        corrected_answer="高血压患者应避免长期使用布洛芬。",
    )
    second = client.post("/v1/ratings", json=changed)
    assert second.status_code == 200
    assert second.json()["outcome"] == "updated"
    assert second.json()["reasons"] == ["factual_error", "wrong_drug_or_dose"]
    [stored] = _ratings(session)
    assert stored.verdict == "unacceptable"
    assert stored.corrected_answer == "高血压患者应避免长期使用布洛芬。"
    assert stored.updated_at > stored.created_at
    other = client.post("/v1/ratings", json=make_rating(interaction_id, rater="dr-02"))
    assert other.status_code == 201
    assert len(_ratings(session)) == 2
    ratings = client.get(f"/v1/interactions/{interaction_id}").json()["ratings"]
    assert [r["rater"] for r in ratings] == ["dr-01", "dr-02"]


def test_idempotency_key_replay_never_overwrites(
    client, session, interaction_id, make_rating
) -> None:
    key = {"Idempotency-Key": "rate-1"}
    first = client.post("/v1/ratings", json=make_rating(interaction_id), headers=key)
    assert first.status_code == 201
    newer = make_rating(interaction_id, verdict="unacceptable", idempotency_key="rate-2")
    assert client.post("/v1/ratings", json=newer).status_code == 200
    late_retry = client.post("/v1/ratings", json=make_rating(interaction_id), headers=key)
    assert late_retry.status_code == 200
    assert late_retry.json()["outcome"] == "replayed"
    assert late_retry.json()["verdict"] == "unacceptable"
    [stored] = _ratings(session)
    assert stored.verdict == "unacceptable"
    assert stored.idempotency_key == "rate-2"


def test_replay_returns_the_stored_rating(client, session, interaction_id, make_rating) -> None:
    body = make_rating(interaction_id, idempotency_key="k-1", comment="ok")
    assert client.post("/v1/ratings", json=body).status_code == 201
    again = client.post("/v1/ratings", json=body, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 200
    assert again.json()["outcome"] == "replayed"
    assert len(_ratings(session)) == 1


def test_key_reused_for_another_rater_is_409(client, session, interaction_id, make_rating) -> None:
    client.post("/v1/ratings", json=make_rating(interaction_id, idempotency_key="k"))
    clash = client.post("/v1/ratings", json=make_rating(interaction_id, rater="dr-9"),
                        headers={"Idempotency-Key": "k"})
    assert clash.status_code == 409
    assert clash.json()["error"]["code"] == "idempotency_key_reused"
    assert len(_ratings(session)) == 1


def test_header_and_body_keys_must_agree(client, session, interaction_id, make_rating) -> None:
    body = make_rating(interaction_id, idempotency_key="a")
    answer = client.post("/v1/ratings", json=body, headers={"Idempotency-Key": "b"})
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "idempotency_key"
    assert _ratings(session) == []


def test_invalid_verdict_and_reason_are_422_with_fields(
    client, session, interaction_id, make_rating
) -> None:
    body = make_rating(interaction_id, verdict="maybe", reasons=["too_long"])
    answer = client.post("/v1/ratings", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == "verdict"
    assert "verdict" in error["message"]
    assert "reasons.0" in error["message"]
    assert _ratings(session) == []


def test_unknown_interaction_is_404(client, session, make_rating) -> None:
    answer = client.post("/v1/ratings", json=make_rating(str(uuid.uuid4())))
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "interaction_not_found"
    assert _ratings(session) == []


def test_phi_in_a_correction_is_refused(client, session, interaction_id, make_rating) -> None:
    body = make_rating(interaction_id, verdict="unacceptable", corrected_answer="请拨打13912345678")
    answer = client.post("/v1/ratings", json=body)
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "corrected_answer"
    assert "13912345678" not in answer.text
    assert _ratings(session) == []


def _make_database_unavailable(settings, session):
    """Really take the database away: a held SQLite write lock, or refused connections."""
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        import sqlite3

        blocker = sqlite3.connect(url.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        return blocker.close
    admin = psycopg.connect(
        url.set(drivername="postgresql", database="postgres").render_as_string(False),
        autocommit=True,
    )
    admin.execute(f"ALTER DATABASE {url.database} ALLOW_CONNECTIONS false")
    admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
        (url.database,),
    )

    def restore() -> None:
        admin.execute(f"ALTER DATABASE {url.database} ALLOW_CONNECTIONS true")
        admin.close()

    return restore


def test_database_down_is_503_and_nothing_written(
    client, session, settings, interaction_id, make_rating, make_record
) -> None:
    session.close()
    restore = _make_database_unavailable(settings, session)
    try:
        rated = client.post("/v1/ratings", json=make_rating(interaction_id))
        batch = client.post("/v1/interactions", json={"records": [make_record(), make_record()]})
        ready = client.get("/readyz")
    finally:
        restore()
    for answer in (rated, batch):
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "database_unavailable"
        assert answer.headers["retry-after"] == "5"
    if not settings.is_sqlite:  # a locked SQLite file is still reachable
        assert ready.status_code == 503
    assert _ratings(session) == []
    assert session.scalar(select(func.count()).select_from(Interaction)) == 1
    assert client.post("/v1/ratings", json=make_rating(interaction_id)).status_code == 201
