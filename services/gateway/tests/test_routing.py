"""Stable/canary routing: weighted, sticky per conversation, switchable by ops."""

from __future__ import annotations

import httpx
from medgo_gateway.upstream import CANARY, STABLE, Upstream

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


def test_weighted_pick_is_sticky_per_conversation():
    upstream = Upstream(  # routing decisions only: the client is never used
        client=httpx.AsyncClient(),
        stable_url="http://stable",
        canary_url="http://canary",
        canary_weight=0.3,
        adapter=None,
        models_cache_s=1,
        probe_timeout_s=1,
    )
    conversations = [f"u_1:{i}" for i in range(2000)]
    first = [upstream.backend_for(c) for c in conversations]
    assert first == [upstream.backend_for(c) for c in conversations]  # every turn alike
    share = first.count(CANARY) / len(first)
    assert 0.25 < share < 0.35
    upstream.set_canary_weight(0.0)
    assert {upstream.backend_for(c) for c in conversations} == {STABLE}
    upstream.set_canary_weight(1.0)
    assert {upstream.backend_for(c) for c in conversations} == {CANARY}
    upstream.set_canary_weight(0.5)
    moved = [c for c, b in zip(conversations, first, strict=True) if b == CANARY]
    assert all(upstream.backend_for(c) == CANARY for c in moved)  # raising keeps them


def test_ops_moves_traffic_to_the_canary(make_settings, serve, vllm_server, keys):
    """Stable is down, the canary is the real vLLM: the weight decides who answers."""
    settings = make_settings(inference_url="http://127.0.0.1:9", canary_url=vllm_server)
    chat = {"model": "medgo", "messages": [{"role": "user", "content": "胸痛"}], "max_tokens": 2}
    with serve(settings) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/chat/completions",
            json=chat,
            headers=keys.auth("api_client"),
        )
        assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
        put = httpx.put(
            url + "/admin/routing", json={"canary_weight": 1.0}, headers=keys.auth("ops")
        )
        assert put.status_code == 200
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/chat/completions",
            json=chat,
            headers=keys.auth("api_client"),
        )
        assert r.status_code == 200 and r.headers["x-medgo-checkpoint"] == "medgo-tiny-sft"
        ready = httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/readyz")
        assert ready.status_code == 503 and "stable" in ready.json()["reason"]
