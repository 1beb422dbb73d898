"""The real vLLM OpenAI server on medgo-tiny, as our launcher starts it.

These are the guarantees the gateway builds on: what `/v1/models` lists, the shape of
completions and SSE streams, LoRA adapters addressable by checkpoint id, and OpenAI
error envelopes with 4xx codes for bad requests.
"""

from __future__ import annotations

import json
import os
import re

import httpx
import pytest

pytestmark = pytest.mark.vllm

CJK = re.compile(r"[\u4e00-\u9fff]")
QUESTION = "高血压患者日常饮食要注意什么？"
ADAPTER = "medgo-tiny-sft"


def chat_body(model: str = "medgo", **extra: object) -> dict:
    """The model's own sampling defaults (generation_config.json), as clinicians get them.

    Greedy decoding is not used: a model this small degenerates under it (repeated digits,
    or an immediate end of turn). A fixed seed makes the sample reproducible and
    `min_tokens` (a vLLM extension) guarantees there is an answer to inspect.
    """
    return {
        "model": model,
        "messages": [{"role": "user", "content": QUESTION}],
        "max_tokens": 24,
        "min_tokens": 8,
        "seed": 7,
        **extra,
    }


@pytest.fixture(scope="module")
def client(vllm_server: str):
    with httpx.Client(base_url=vllm_server, timeout=120) as http:
        yield http


def assert_error(resp: httpx.Response, status: int, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["message"]
    assert error["code"] == status
    if param is not None:
        assert error["param"] == param
    return error


def test_models_lists_base_and_adapter(client: httpx.Client) -> None:
    models = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert set(models) == {"medgo", ADAPTER}
    assert models["medgo"]["parent"] is None
    assert models[ADAPTER]["parent"] == "medgo"


def test_probe_aliases(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert "vllm:" in client.get("/metrics").text


def test_chat_completion(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body())
    assert resp.status_code == 200, resp.text
    body = resp.json()
    answer = body["choices"][0]["message"]["content"]
    assert body["model"] == "medgo"
    assert body["choices"][0]["message"]["role"] == "assistant"
    assert answer.strip()
    assert 8 <= body["usage"]["completion_tokens"] <= 24
    if "MEDGO_TEST_MODEL_DIR" not in os.environ:  # the real medgo-tiny, not a scratch model
        assert CJK.search(answer), answer


def test_streaming_chat_completion(client: httpx.Client) -> None:
    with client.stream("POST", "/v1/chat/completions", json=chat_body(stream=True)) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        events = [line[len("data: "):] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert len(chunks) >= 2
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert text.strip()
    assert chunks[-1]["choices"][0]["finish_reason"] in {"stop", "length"}


def test_request_naming_the_adapter(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body(ADAPTER))
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"] == ADAPTER
    answer = resp.json()["choices"][0]["message"]["content"]
    assert answer.strip()
    if "MEDGO_TEST_MODEL_DIR" not in os.environ:
        assert CJK.search(answer), answer


def test_bad_json(client: httpx.Client) -> None:
    resp = client.post(
        "/v1/chat/completions",
        content=b'{"model": "medgo", "messages": [',
        headers={"content-type": "application/json"},
    )
    assert_error(resp, 400)


def test_messages_not_a_list(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json={"model": "medgo", "messages": "hi"})
    assert_error(resp, 400, "body.messages")


def test_unknown_model(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body("medgo-72b-nope"))
    error = assert_error(resp, 404, "model")
    assert "medgo-72b-nope" in error["message"]


def test_max_tokens_beyond_context(client: httpx.Client) -> None:
    resp = client.post("/v1/chat/completions", json=chat_body(max_tokens=1_000_000))
    error = assert_error(resp, 400, "max_tokens")
    assert "max_model_len" in error["message"]
