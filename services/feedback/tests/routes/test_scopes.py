"""Least privilege between services: each route needs one scope, with the defaults.

The defaults are the production ones (`scopes.DEFAULT_SCOPES`): the gateway only adds
records, the trainer only reads exports and statistics (and runs the retention purge,
which deletes only what is due), ops may do everything. A caller
without the scope gets 403 in the error envelope naming the scope, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from medgo_feedback.app import create_app
from medgo_feedback.models import ExportAudit, GateOverride, Interaction, Rating
from medgo_feedback.scopes import DEFAULT_SCOPES
from medgo_feedback.settings import FeedbackSettings
from pydantic import SecretStr, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

TOKENS = {"gateway": "gw-scope-token", "trainer": "tr-scope-token", "ops": "ops-scope-token",
          "bench": "no-scope-token"}
GATE = {"stable": "medgo-tiny-sft", "candidate": "medgo-tiny-dpo"}
OVERRIDE = {**GATE, "reason": "clinical review approved", "actor": "ops-lead"}


@pytest.fixture
def backend() -> str:
    """Scope checks run before any SQL, so one backend is enough."""
    return "sqlite"


@pytest.fixture
def client_of(settings: FeedbackSettings) -> Iterator[TestClient]:
    """A client of an app with the test callers' tokens and the default scopes."""
    scoped = settings.model_copy(update={
        "service_tokens": {name: SecretStr(token) for name, token in TOKENS.items()},
        "service_scopes": dict(DEFAULT_SCOPES),
    })
    with TestClient(create_app(scoped)) as client:
        yield client


def as_caller(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[name]}"}


def _count(session: Session, model: type) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(model)) or 0


def _assert_forbidden(response: Any, scope: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["error"]
    assert error["code"] == "insufficient_scope"
    assert error["param"] == scope
    assert scope in error["message"]


def test_gateway_writes_records_and_ratings(
    client_of, make_record, make_rating, session
) -> None:
    record = make_record()
    assert client_of.post("/v1/interactions", json=record,
                          headers=as_caller("gateway")).status_code == 201
    rating = make_rating(record["id"])
    assert client_of.post("/v1/ratings", json=rating,
                          headers=as_caller("gateway")).status_code == 201
    retried = client_of.post("/v1/ratings", json=rating, headers=as_caller("gateway"))
    assert retried.status_code == 200  # the gateway's retry of the same rating
    assert _count(session, Rating) == 1


@pytest.mark.parametrize(("method", "path", "scope"), [
    ("GET", "/v1/exports/dpo", "exports:read"),
    ("GET", "/v1/stats", "stats:read"),
    ("GET", "/v1/stats/canary-gate", "stats:read"),
    ("GET", "/v1/interactions/00000000-0000-4000-8000-000000000000", "interactions:read"),
    ("POST", "/v1/stats/canary-gate/overrides", "gate:override"),
    ("GET", "/v1/retention", "retention:run"),
    ("POST", "/v1/retention/purge", "retention:run"),
])
def test_gateway_token_cannot_read_or_override(
    client_of, session, method, path, scope
) -> None:
    response = client_of.request(method, path, params=GATE if method == "GET" else None,
                                 json=OVERRIDE if method == "POST" else None,
                                 headers=as_caller("gateway"))
    _assert_forbidden(response, scope)
    assert _count(session, ExportAudit) == 0
    assert _count(session, GateOverride) == 0


def test_trainer_reads_exports_and_stats(client_of, session) -> None:
    """... and runs the retention purge it schedules (medgo-train purge)."""
    headers = as_caller("trainer")
    assert client_of.get("/v1/retention", headers=headers).status_code == 200
    assert client_of.post("/v1/retention/purge", headers=headers).status_code == 200
    assert client_of.get("/v1/exports/dpo", headers=headers).status_code == 200
    assert client_of.get("/v1/stats", headers=headers).status_code == 200
    assert client_of.get("/v1/stats/canary-gate", params=GATE, headers=headers).status_code == 200
    assert _count(session, ExportAudit) == 1


def test_trainer_token_cannot_write_training_data(
    client_of, make_record, make_rating, session
) -> None:
    record = make_record()
    assert client_of.post("/v1/interactions", json=record,
                          headers=as_caller("gateway")).status_code == 201
    _assert_forbidden(client_of.post("/v1/ratings", json=make_rating(record["id"]),
                                     headers=as_caller("trainer")), "ratings:write")
    _assert_forbidden(client_of.post("/v1/interactions", json=make_record(),
                                     headers=as_caller("trainer")), "interactions:write")
    _assert_forbidden(client_of.post("/v1/stats/canary-gate/overrides", json=OVERRIDE,
                                     headers=as_caller("trainer")), "gate:override")
    assert (_count(session, Interaction), _count(session, Rating)) == (1, 0)
    assert _count(session, GateOverride) == 0


def test_ops_may_do_everything(client_of, make_record, make_rating) -> None:
    headers = as_caller("ops")
    record = make_record()
    assert client_of.post("/v1/interactions", json=record, headers=headers).status_code == 201
    assert client_of.post("/v1/ratings", json=make_rating(record["id"]),
                          headers=headers).status_code == 201
    assert client_of.get(f"/v1/interactions/{record['id']}", headers=headers).status_code == 200
    assert client_of.get("/v1/exports/sft", headers=headers).status_code == 200
    override = client_of.post("/v1/stats/canary-gate/overrides", json=OVERRIDE, headers=headers)
    assert override.status_code == 201
    assert override.json()["actor"] == "ops-lead (via ops)"


def test_a_token_without_scopes_is_refused_everywhere(
    client_of, make_record, session
) -> None:
    headers = as_caller("bench")
    _assert_forbidden(client_of.post("/v1/interactions", json=make_record(), headers=headers),
                      "interactions:write")
    _assert_forbidden(client_of.get("/v1/exports/kto", headers=headers), "exports:read")
    assert _count(session, Interaction) == 0


def test_unknown_token_is_still_401(client_of) -> None:
    response = client_of.get("/v1/stats", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401


def test_scopes_setting_defaults_and_validation(monkeypatch) -> None:
    monkeypatch.delenv("MEDGO_FEEDBACK_SERVICE_SCOPES", raising=False)
    assert FeedbackSettings().service_scopes == DEFAULT_SCOPES
    monkeypatch.setenv("MEDGO_FEEDBACK_SERVICE_SCOPES", '{"bench": ["ratings:write", "*"]}')
    assert FeedbackSettings().service_scopes == {"bench": ("ratings:write", "*")}
    monkeypatch.setenv("MEDGO_FEEDBACK_SERVICE_SCOPES", '{"gateway": ["exports:raed"]}')
    with pytest.raises(ValidationError, match=r"unknown scope.*exports:raed"):
        FeedbackSettings()
