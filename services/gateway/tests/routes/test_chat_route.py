"""The chat route's own argument resolution (`routes/chat.py`, `ChatRoute`), through the
real HTTP server: what FastAPI's resolver answered, in the route's order, and the
OpenAPI contract still generated from the endpoint's signature. The inference URL is
dead: every case here is answered before the model would be called."""

from __future__ import annotations

import json

import httpx
import pytest

CHAT = "/v1/chat/completions"
BODY = {"model": "medgo", "messages": [{"role": "user", "content": "你好"}]}


def _error(response: httpx.Response, status: int) -> dict:
    assert response.status_code == status, response.text
    return response.json()["error"]


@pytest.fixture
def gateway(make_settings, serve):
    with serve(make_settings(inference_url="http://127.0.0.1:9")) as url:
        yield url


def test_the_caller_is_checked_before_the_body_is_read(gateway):
    for headers in ({}, {"Authorization": "Basic bWc6eA=="}, {"Authorization": "Bearer"}):
        r = httpx.post(gateway + CHAT, content=b"{not json",
                       headers={"Content-Type": "application/json", **headers})
        assert _error(r, 401)["code"] == "missing_api_key"
        assert r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(gateway + CHAT, content=b"{not json", headers={
        "Content-Type": "application/json", "Authorization": "Bearer mg-unknown"})
    assert _error(r, 401)["code"] == "invalid_api_key"


def test_the_body_must_be_json_and_a_chat_request(gateway, keys):
    auth = keys.auth("api_client")
    r = httpx.post(gateway + CHAT, content=json.dumps(BODY).encode(),
                   headers={**auth, "Content-Type": "text/plain"})
    err = _error(r, 400)
    assert err["code"] == "invalid_content_type"
    assert "application/json" in err["message"]
    r = httpx.post(gateway + CHAT, content=b'{"model": "medgo", "messages": [',
                   headers={**auth, "Content-Type": "application/json; charset=utf-8"})
    assert _error(r, 400)["code"] == "invalid_value"
    r = httpx.post(gateway + CHAT, json={"model": "medgo"}, headers=auth)
    err = _error(r, 400)
    assert (err["param"], err["code"]) == ("messages", "invalid_value")
    assert err["message"] == "messages: Field required"
    bad_role = {"model": "medgo", "messages": [{"role": "doctor", "content": "你好"}]}
    err = _error(httpx.post(gateway + CHAT, json=bad_role, headers=auth), 400)
    assert err["param"] == "messages.0.role"
    assert "doctor" not in err["message"]  # the input is never echoed


def test_the_conversation_id_is_bounded(gateway, keys):
    headers = {**keys.auth("api_client"), "x-medgo-conversation-id": "c" * 129}
    err = _error(httpx.post(gateway + CHAT, json=BODY, headers=headers), 400)
    assert err["param"] == "header.x-medgo-conversation-id"
    assert "at most 128 characters" in err["message"]
    # 128 characters pass resolution: the dead inference answers instead.
    headers["x-medgo-conversation-id"] = "c" * 128
    assert httpx.post(gateway + CHAT, json=BODY, headers=headers).status_code == 503


def test_openapi_still_documents_the_chat_contract(make_settings, serve):
    with serve(make_settings(inference_url="http://127.0.0.1:9", api_docs=True)) as url:
        spec = httpx.get(url + "/openapi.json").json()
    operation = spec["paths"][CHAT]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    assert operation["security"] == [{"HTTPBearer": []}]
    [header] = [p for p in operation["parameters"] if p["in"] == "header"]
    assert header["name"] == "x-medgo-conversation-id"
    assert {"401", "403", "429", "503"} <= set(operation["responses"])
