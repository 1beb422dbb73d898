"""Chat through the gateway to the real vLLM serving medgo-tiny (root `vllm_server`)."""

from __future__ import annotations

import json
import re
import threading

import httpx
import pytest
from medgo_gateway.policy.auth import Role, add_key

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


CHAT = "/v1/chat/completions"
ADAPTER = "medgo-tiny-sft"


# Long answers on demand: vLLM's ignore_eos, let through the gateway's parameter
# allowlist as an operator would for a load test.
LONG = ["ignore_eos"]


def _chat(content: str = "头痛发热三天，应该做哪些检查？", **extra) -> dict:
    return {"model": "medgo", "messages": [{"role": "user", "content": content}], **extra}


def _events(text: str) -> list[str]:
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events), events
    return [e.removeprefix("data: ") for e in events]


def _vllm_counts(vllm_url: str, http: httpx.Client | None = None) -> tuple[float, float]:
    """vLLM's running/waiting gauges. Pass a client made before a stream starts: the
    gateway streams from a thread of this process, and building a new client (its SSL
    context) while that thread holds the GIL can take seconds on 2 cores."""
    text = (http or httpx).get(vllm_url + "/metrics").text
    found = {}
    for name in ("running", "waiting"):
        match = re.search(rf"^vllm:num_requests_{name}\{{[^}}]*\}} ([0-9.]+)$", text, re.M)
        found[name] = float(match.group(1))
    return found["running"], found["waiting"]


@pytest.fixture
def gateway(make_settings, serve, vllm_server):
    with serve(make_settings(inference_url=vllm_server, passthrough_params=LONG)) as url:
        yield url


def test_models_and_json_chat(gateway, keys):
    models = httpx.get(
        timeout=MODEL_TIMEOUT_S, url=gateway + "/v1/models", headers=keys.auth("api_client")
    ).json()
    assert [(m["id"], m["root"]) for m in models["data"]] == [("medgo", ADAPTER)]
    r = httpx.post(
        timeout=MODEL_TIMEOUT_S,
        url=gateway + CHAT,
        json=_chat(max_tokens=5),
        headers=keys.auth("clinician"),
    )
    assert r.status_code == 200, r.text
    assert r.headers["x-medgo-checkpoint"] == ADAPTER
    assert re.fullmatch(r"[0-9a-f-]{36}", r.headers["x-medgo-interaction-id"])
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == ADAPTER
    assert body["usage"]["completion_tokens"] <= 5
    assert isinstance(body["choices"][0]["message"]["content"], str)
    metrics = httpx.get(timeout=MODEL_TIMEOUT_S, url=gateway + "/metrics").text
    line = (
        'medgo_gateway_requests_total{checkpoint="medgo-tiny-sft",'
        'route="/v1/chat/completions",status="200"} 1.0'
    )
    assert line in metrics
    assert 'medgo_gateway_tokens_total{checkpoint="medgo-tiny-sft",kind="completion"}' in metrics


def test_stream_is_passed_through(gateway, keys):
    r = httpx.post(
        timeout=MODEL_TIMEOUT_S,
        url=gateway + CHAT,
        json=_chat(max_tokens=6, stream=True),
        headers=keys.auth("api_client"),
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    assert r.headers["x-medgo-checkpoint"] == ADAPTER
    events = _events(r.text)
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["choices"] for c in chunks)
    assert "usage" not in chunks[-1]  # the client did not ask for usage
    assert chunks[-1]["choices"][0]["finish_reason"] in ("length", "stop")
    options = {"include_usage": True}
    r = httpx.post(
        timeout=MODEL_TIMEOUT_S,
        url=gateway + CHAT,
        json=_chat(max_tokens=6, stream=True, stream_options=options),
        headers=keys.auth("api_client"),
    )
    chunks = [json.loads(e) for e in _events(r.text)[:-1]]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] <= 6
    metrics = httpx.get(timeout=MODEL_TIMEOUT_S, url=gateway + "/metrics").text
    assert 'medgo_gateway_time_to_first_token_seconds_count{checkpoint="medgo-tiny-sft"}' in metrics


def test_token_quota(make_settings, serve, vllm_server, keys):
    key, _ = add_key(keys.file, name="tpm-small", role=Role.api_client, tokens_per_minute=10)
    auth = {"Authorization": f"Bearer {key}"}
    with serve(make_settings(inference_url=vllm_server)) as url:
        assert (
            httpx.post(
                timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=_chat(max_tokens=4), headers=auth
            ).status_code
            == 200
        )
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + CHAT, json=_chat(max_tokens=4), headers=auth
        )
        assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_tokens"
        assert int(r.headers["retry-after"]) >= 1


def test_upstream_timeout_is_504(make_settings, serve, vllm_server, keys):
    settings = make_settings(
        inference_url=vllm_server, upstream_timeout_s=0.05, passthrough_params=LONG
    )
    with serve(settings) as url:
        body = _chat(max_tokens=1000, ignore_eos=True)
        r = httpx.post(url + CHAT, json=body, headers=keys.auth("api_client"), timeout=60)
        assert r.status_code == 504
        assert r.json()["error"] == {
            "message": "the inference backend timed out",
            "type": "timeout_error",
            "param": None,
            "code": "upstream_timeout",
        }


def test_overload_answers_503_with_retry_after(make_settings, serve, vllm_server, keys):
    settings = make_settings(
        inference_url=vllm_server, max_in_flight=1, max_queue=0, passthrough_params=LONG
    )
    with serve(settings) as url, httpx.Client(timeout=120) as client:
        body = _chat(max_tokens=1000, ignore_eos=True, stream=True)
        with client.stream("POST", url + CHAT, json=body, headers=keys.auth("ops")) as held:
            stream = held.iter_raw()  # kept referenced: dropping it would close the stream
            next(stream)  # the slot is taken while this stream is open
            # The same (already built) client: see _vllm_counts on why not a new one.
            r = client.post(url + CHAT, json=_chat(max_tokens=2), headers=keys.auth("ops"))
            assert r.status_code == 503 and r.headers["retry-after"] == "1"
            assert r.json()["error"]["code"] == "queue_full"
            assert next(stream)  # the held stream is unaffected
        metrics = httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/metrics").text
        assert 'medgo_gateway_rejections_total{reason="queue_full"} 1.0' in metrics


def test_client_disconnect_aborts_generation(gateway, vllm_server, keys):
    """After the client hangs up, vLLM's running and waiting counts return to 0."""
    body = _chat(max_tokens=1000, ignore_eos=True, stream=True)
    seen_running = threading.Event()
    with (
        httpx.Client(timeout=120) as client,
        client.stream(
            "POST", gateway + CHAT, json=body, headers=keys.auth("api_client")
        ) as response,
    ):
        stream = response.iter_raw()
        for _ in range(3):
            next(stream)
        if _vllm_counts(vllm_server, client)[0] >= 1:
            seen_running.set()
    # Leaving the block closed the connection mid-stream.
    assert seen_running.is_set(), "the generation was not running while streaming"
    deadline_polls = 200
    for _ in range(deadline_polls):
        if _vllm_counts(vllm_server) == (0.0, 0.0):
            break
        threading.Event().wait(0.1)
    assert _vllm_counts(vllm_server) == (0.0, 0.0)
    metrics = httpx.get(timeout=MODEL_TIMEOUT_S, url=gateway + "/metrics").text
    assert "medgo_gateway_in_flight 0.0" in metrics
