"""`medgo-feedback-admin`: export to a file and purge, through `main(argv)`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from medgo_feedback.cli import main
from medgo_feedback.models import ExportAudit, Interaction
from sqlalchemy import func, select


@pytest.fixture
def admin_env(monkeypatch, settings) -> None:
    monkeypatch.setenv("MEDGO_FEEDBACK_DATABASE_URL", settings.database_url)


def test_export_to_file_is_audited(admin_env, client, session, make_record, make_rating,
                                   tmp_path, capsys) -> None:
    body = make_record()
    client.post("/v1/interactions", json=body)
    client.post("/v1/ratings", json=make_rating(body["id"]))
    out = tmp_path / "sft.jsonl"
    assert main(["export", "sft", "--since", "2000-01-01T00:00:00Z", "-o", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [
        {"messages": [*body["messages"], {"role": "assistant", "content": body["response"]}]}
    ]
    assert "exported 1 sft rows" in capsys.readouterr().err
    audit = session.scalars(select(ExportAudit)).one()
    assert (audit.caller, audit.kind, audit.row_count) == ("cli", "sft", 1)


def test_export_refuses_a_naive_time(admin_env, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["export", "dpo", "--since", "2026-11-01T00:00:00"])
    assert "has no time zone" in capsys.readouterr().err


def test_purge(admin_env, client, session, make_record, capsys) -> None:
    old = make_record(created_at=(datetime.now(UTC) - timedelta(days=40)).isoformat())
    client.post("/v1/interactions", json={"records": [old, make_record()]})
    assert main(["purge", "--older-than-days", "30"]) == 0
    assert "purged 1 interactions and 0 ratings" in capsys.readouterr().out
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Interaction)) == 1
