"""The metrics behind the feedback alerts (deploy/k8s/components/monitoring/rules.yaml):
write errors by reason, and exports by kind and calling service. SQLite only: what is
counted is decided in the app, not by the database."""

from __future__ import annotations

import pytest
from sqlalchemy import text

TRAINER_AUTH = {"Authorization": "Bearer tr-test-token"}  # conftest.TOKENS["trainer"]


def _sample(client, sample: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(sample + " "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_failed_write_is_counted_a_failed_read_is_not(client, session, make_record) -> None:
    session.execute(text("DROP TABLE ratings"))
    session.execute(text("DROP TABLE interactions"))
    session.commit()
    assert client.post("/v1/interactions", json=make_record()).status_code == 503
    assert client.get("/v1/stats").status_code == 503
    assert _sample(client, 'medgo_feedback_write_errors_total{reason="unavailable"}') == 1


@pytest.mark.parametrize("backend", ["sqlite"])
def test_exports_are_counted_by_kind_and_caller(client) -> None:
    assert client.get("/v1/exports/dpo", headers=TRAINER_AUTH).status_code == 200
    assert client.get("/v1/exports/sft").status_code == 200  # as the gateway
    assert _sample(client, 'medgo_feedback_exports_total{caller="trainer",kind="dpo"}') == 1
    assert _sample(client, 'medgo_feedback_exports_total{caller="gateway",kind="sft"}') == 1
