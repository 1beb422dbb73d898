"""GET /v1/exports/{kind} over HTTP: streamed JSONL, auditing the calling service."""

from __future__ import annotations

import json

from medgo_feedback.models import ExportAudit
from sqlalchemy import select

TRAINER = {"Authorization": "Bearer tr-test-token"}


def test_dpo_export_streams_jsonl_and_audits_the_caller(
    client, session, make_record, make_rating
) -> None:
    good, bad = make_record(response="好的回答"), make_record(response="错误的回答")
    client.post("/v1/interactions", json={"records": [good, bad]})
    client.post("/v1/ratings", json=make_rating(good["id"]))
    client.post("/v1/ratings", json=make_rating(bad["id"], verdict="unacceptable"))
    answer = client.get("/v1/exports/dpo", params={"min_raters": 1}, headers=TRAINER)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in answer.text.splitlines()]
    assert rows == [
        {
            "prompt": good["messages"],
            "chosen": [{"role": "assistant", "content": "好的回答"}],
            "rejected": [{"role": "assistant", "content": "错误的回答"}],
        }
    ]
    [audit] = session.scalars(select(ExportAudit)).all()
    assert (audit.caller, audit.kind, audit.row_count, audit.completed) == (
        "trainer", "dpo", 1, True
    )


def test_empty_export_is_an_empty_body(client) -> None:
    answer = client.get("/v1/exports/sft", params={"checkpoint": "nobody"})
    assert answer.status_code == 200
    assert answer.text == ""


def test_bad_export_parameters_are_422(client, session) -> None:
    cases = [
        ("/v1/exports/ppo", {}, "kind"),
        ("/v1/exports/dpo", {"min_raters": 0}, "min_raters"),
        ("/v1/exports/dpo", {"since": "2026-11-01T00:00:00"}, "since"),
        (
            "/v1/exports/dpo",
            {"since": "2026-11-02T00:00:00Z", "until": "2026-11-01T00:00:00Z"},
            "since",
        ),
    ]
    for path, params, param in cases:
        answer = client.get(path, params=params)
        assert answer.status_code == 422, path
        assert answer.json()["error"]["param"] == param
    assert session.scalars(select(ExportAudit)).all() == []
