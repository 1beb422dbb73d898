"""POST/GET /v1/interactions against a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest
from medgo_feedback.models import Interaction
from sqlalchemy import func, select

NOBODY = {"Authorization": ""}


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(Interaction))


def test_single_record_is_stored_and_returned(client, session, make_record) -> None:
    body = make_record()
    created = client.post("/v1/interactions", json=body)
    assert created.status_code == 201
    assert created.json() == {"inserted": 1, "duplicates": 0}
    fetched = client.get(f"/v1/interactions/{body['id']}")
    assert fetched.status_code == 200
    got = fetched.json()
    assert got["id"] == body["id"]
    assert got["messages"] == body["messages"]
    assert got["response"] == body["response"]
    assert got["ratings"] == []
    assert "prompt_key" not in got
    assert _count(session) == 1


def test_trace_id_is_stored_and_returned(client, session, make_record) -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    body = make_record(trace_id=trace_id)
    assert client.post("/v1/interactions", json=body).status_code == 201
    assert client.get(f"/v1/interactions/{body['id']}").json()["trace_id"] == trace_id
    assert session.scalar(select(Interaction.trace_id)) == trace_id


@pytest.mark.parametrize(
    "bad", ["4BF92F3577B34DA6A3CE929D0E0E4736", "4bf92f3577b34da6", "患者张三" * 8]
)
def test_malformed_trace_id_is_refused(client, session, make_record, bad) -> None:
    answer = client.post("/v1/interactions", json=make_record(trace_id=bad))
    assert answer.status_code == 422
    assert "trace_id" in answer.json()["error"]["message"]
    assert "张三" not in answer.text
    assert _count(session) == 0


def test_reposting_the_same_id_is_a_no_op(client, session, make_record) -> None:
    body = make_record()
    assert client.post("/v1/interactions", json=body).status_code == 201
    again = client.post("/v1/interactions", json={**body, "response": "changed"})
    assert again.status_code == 200
    assert again.json() == {"inserted": 0, "duplicates": 1}
    assert client.get(f"/v1/interactions/{body['id']}").json()["response"] == body["response"]
    assert _count(session) == 1


def test_batch_inserts_new_and_skips_known(client, session, make_record) -> None:
    known = make_record()
    client.post("/v1/interactions", json=known)
    batch = {"records": [known, make_record(), make_record()]}
    answer = client.post("/v1/interactions", json=batch)
    assert answer.status_code == 201
    assert answer.json() == {"inserted": 2, "duplicates": 1}
    assert _count(session) == 3


def test_batch_with_phi_is_refused_whole(client, session, make_record) -> None:
    leaky = make_record(response="请联系张三医生，电话13812345678。")
    answer = client.post("/v1/interactions", json={"records": [make_record(), leaky]})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "phi_detected"
    assert error["param"] == "records.1.response"
    assert "13812345678" not in answer.text
    assert _count(session) == 0


def test_phi_in_a_message_is_refused(client, session, make_record) -> None:
    leaky = make_record(messages=[{"role": "user", "content": "我的身份证号是11010519491231002X"}])
    answer = client.post("/v1/interactions", json=leaky)
    assert answer.status_code == 422
    assert answer.json()["error"]["param"] == "messages.0.content"
    assert _count(session) == 0


def test_invalid_record_names_the_fields(client, session, make_record) -> None:
    body = make_record(latency_ms=-1, created_at="2026-11-25T10:00:00")
    answer = client.post("/v1/interactions", json=body)
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert "latency_ms" in error["message"]
    assert "created_at" in error["message"]
    assert _count(session) == 0


def test_oversized_body_is_413(client, session, make_record) -> None:
    body = make_record(response="很" * 40_000)  # ~120 KB of UTF-8, limit is 64 KiB
    answer = client.post("/v1/interactions", json=body)
    assert answer.status_code == 413
    assert answer.json()["error"]["type"] == "request_too_large"
    assert _count(session) == 0


def test_chunked_oversized_body_is_413(client, session, make_record) -> None:
    payload = ('{"records": [' + ",".join(['"' + "x" * 1000 + '"'] * 80) + "]}").encode()

    def chunks():
        for start in range(0, len(payload), 4096):
            yield payload[start : start + 4096]

    answer = client.post(
        "/v1/interactions", content=chunks(), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 413
    assert _count(session) == 0


def test_too_many_records_in_a_batch_is_413(client, session, make_record) -> None:
    answer = client.post("/v1/interactions", json={"records": [make_record()] * 21})
    assert answer.status_code == 413
    assert answer.json()["error"]["param"] == "records"
    assert _count(session) == 0


def test_unknown_interaction_is_404(client) -> None:
    missing = uuid.uuid4()
    answer = client.get(f"/v1/interactions/{missing}")
    assert answer.status_code == 404
    assert answer.json()["error"] == {
        "message": f"no interaction with id {missing}",
        "type": "not_found_error",
        "param": None,
        "code": "interaction_not_found",
    }


def test_no_anonymous_access(client, session, make_record) -> None:
    body = make_record()
    for headers in (NOBODY, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        answer = client.post("/v1/interactions", json=body, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["type"] == "authentication_error"
        assert answer.headers["www-authenticate"] == "Bearer"
    assert client.get(f"/v1/interactions/{body['id']}", headers=NOBODY).status_code == 401
    assert client.get("/v1/stats", headers=NOBODY).status_code == 401
    assert client.get("/v1/exports/dpo", headers=NOBODY).status_code == 401
    assert _count(session) == 0


def test_probes_are_open_and_metrics_count(client, make_record) -> None:
    assert client.get("/healthz", headers=NOBODY).json() == {"status": "ok"}
    assert client.get("/readyz", headers=NOBODY).json() == {"status": "ready"}
    client.post("/v1/interactions", json=make_record())
    metrics = client.get("/metrics", headers=NOBODY).text
    assert 'medgo_feedback_interactions_total{result="inserted"} 1.0' in metrics


def test_only_role_and_content_of_messages_are_kept(client, make_record) -> None:
    message = {"role": "user", "content": "胸闷怎么办？", "name": "张三"}
    body = make_record(messages=[message])
    assert client.post("/v1/interactions", json=body).status_code == 201
    stored = client.get(f"/v1/interactions/{body['id']}").json()["messages"]
    assert stored == [{"role": "user", "content": "胸闷怎么办？"}]
