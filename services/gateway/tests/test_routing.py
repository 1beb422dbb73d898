"""Routing: the manifest's canary (weighted, sticky per conversation, read from the file),
replicas chosen by fewest in flight, failing ones ejected, readiness without cascade."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import httpx
from medgo_common.schemas.serving import AdapterRef, Canary, ServingManifest
from medgo_gateway.replicas import Replica, ReplicaPool, ReplicaSource
from medgo_gateway.routing import ManifestRouting

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60
CONVERSATIONS = [f"u_1:{i}" for i in range(2000)]


def _write(path: Path, weight: float | None, stable: str = "stable") -> None:
    ServingManifest(
        checkpoint_id=stable, base_model="base",
        adapters=[AdapterRef(name=stable, path=stable), AdapterRef(name="cand", path="cand")],
        canary=Canary(adapter="cand", weight=weight) if weight is not None else None,
    ).save(path)  # fmt: skip


def _arms(routing: ManifestRouting) -> list[str]:
    return [routing.choices(c)[0] for c in CONVERSATIONS]


def test_canary_weight_comes_from_the_manifest_and_is_sticky(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    _write(path, 0.3)
    routing = ManifestRouting(path, None)
    assert routing.reload()
    first = _arms(routing)
    assert first == _arms(routing)  # every turn of a conversation alike
    assert 0.25 < first.count("cand") / len(first) < 0.35
    assert all(routing.choices(c)[1:] == ["stable"] for c in CONVERSATIONS if
               routing.choices(c)[0] == "cand")  # the candidate falls back to stable
    _write(path, 0.5)
    assert routing.reload()
    moved = [c for c, arm in zip(CONVERSATIONS, first, strict=True) if arm == "cand"]
    assert all(routing.choices(c)[0] == "cand" for c in moved)  # raising keeps them
    for weight, arms in ((0.0, {"stable"}), (1.0, {"cand"}), (None, {"stable"})):
        _write(path, weight)
        routing.reload()
        assert set(_arms(routing)) == arms


def test_bad_manifest_is_refused_and_routing_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    _write(path, 0.3)
    routing = ManifestRouting(path, None)
    routing.reload()
    before = _arms(routing)
    data = json.loads(path.read_text())
    for bad in ({"adapter": "cand", "weight": 1.5}, {"adapter": "ghost", "weight": 0.1}):
        path.write_text(json.dumps(data | {"canary": bad}))
        assert not routing.reload()
        assert _arms(routing) == before and "refused" in routing.error
    path.write_text("{")
    assert not routing.reload() and _arms(routing) == before


def test_promotion_keeps_the_old_stable_as_fall_back(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    _write(path, None, stable="v1")
    routing = ManifestRouting(path, None)
    routing.reload()
    _write(path, None, stable="v2")
    routing.reload()
    assert routing.stable_choices() == ["v2", "v1"]


def test_fewest_in_flight_among_healthy_replicas_serving_the_adapter() -> None:
    pool = ReplicaPool(name="stable", source=ReplicaSource(), client=None,  # never called
                       headers={}, probe_timeout_s=1, eject_s=5)
    busy, idle, other, dead = (Replica(u) for u in ("http://a", "http://b", "http://c",
                                                     "http://d"))
    busy.models = idle.models = frozenset({"medgo", "v1"})
    other.models = frozenset({"medgo", "v2"})
    busy.in_flight = 3
    pool.replicas = {r.url: r for r in (busy, idle, other, dead)}
    assert pool.pick("v1", set()) is idle
    assert pool.pick("v1", {"http://b"}) is busy  # the retry goes elsewhere
    assert pool.pick("v3", set()) is None
    pool.eject(idle, "ConnectError")
    assert pool.pick("v1", set()) is busy and idle.describe(0)["last_error"] == "ConnectError"
    pool.eject(idle, "ReadError")
    assert idle.failures == 1  # in flight when it went down: counted once
    idle.ejected_until = 0
    pool.eject(idle, "ConnectError")
    assert idle.failures == 2  # failing again after its back-off: doubled


def test_no_replica_serving_is_503_with_retry_after_not_a_crash(make_settings, serve, keys):
    chat = {"model": "medgo", "messages": [{"role": "user", "content": "胸痛"}]}
    with serve(make_settings()) as url:
        r = httpx.post(url + "/v1/chat/completions", json=chat, headers=keys.auth("api_client"),
                       timeout=MODEL_TIMEOUT_S)
        assert r.status_code == 503 and r.headers["retry-after"]
        assert r.json()["error"]["code"] == "upstream_unavailable"
        ready = httpx.get(url + "/readyz", timeout=MODEL_TIMEOUT_S)
        assert ready.status_code == 503 and "no stable inference replica" in ready.json()["reason"]


def test_dead_replica_in_the_list_never_gets_a_request(make_settings, serve, vllm_server, keys):
    settings = make_settings(inference_url=f"http://127.0.0.1:9,{vllm_server}")
    chat = {"model": "medgo", "messages": [{"role": "user", "content": "胸痛"}], "max_tokens": 2}
    with serve(settings) as url:
        for _ in range(3):
            r = httpx.post(url + "/v1/chat/completions", json=chat, timeout=MODEL_TIMEOUT_S,
                           headers=keys.auth("api_client"))
            assert r.status_code == 200 and r.headers["x-medgo-checkpoint"] == "medgo-tiny-sft"
        assert httpx.get(url + "/readyz", timeout=MODEL_TIMEOUT_S).status_code == 200
        routing = httpx.get(url + "/admin/routing", headers=keys.auth("ops")).json()
        health = {rep["url"]: rep["healthy"] for rep in routing["pools"]["stable"]}
        assert health == {"http://127.0.0.1:9": False, vllm_server: True}


def test_dns_discovery_and_one_line_when_the_name_does_not_resolve(caplog) -> None:
    assert asyncio.run(ReplicaSource(dns="localhost:8001").resolve()) == (
        "http://127.0.0.1:8001",)

    async def refresh_twice() -> ReplicaPool:
        async with aiohttp.ClientSession() as client:
            pool = ReplicaPool(name="stable", source=ReplicaSource(dns="no-such-host.invalid:8001"),
                               client=client, headers={}, probe_timeout_s=1, eject_s=5)
            await pool.refresh()
            await pool.refresh()
            return pool

    pool = asyncio.run(refresh_twice())
    assert pool.replicas == {}
    lines = [r.getMessage() for r in caplog.records if "does not resolve" in r.getMessage()]
    assert len(lines) == 1 and "DNS name no-such-host.invalid:8001" in lines[0]
