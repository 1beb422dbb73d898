"""Quotas shared across gateway replicas, on a real Redis (Debian's `redis-server`).

The tests start and stop their own `redis-server` (the conftest's `redis_server`) and
skip with the reason when the binary is missing (`apt-get install redis-server`; the
test script installs it when it runs as root). Gateways have no inference behind
them: 503 proves a request was admitted past the quotas, 429 that a quota stopped it.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from medgo_common.errors import MedgoError
from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.auth import Role, add_key, load_keys_file
from medgo_gateway.policy.ratelimit import Quotas
from medgo_gateway.policy.shared_store import SharedStore
from prometheus_client import CollectorRegistry

from ..conftest import metric_value

CHAT = "/v1/chat/completions"
BODY = {"model": "medgo", "messages": [{"role": "user", "content": "高血压患者可以吃什么？"}]}

def test_two_gateways_share_one_keys_quota(make_settings, serve, keys, redis_server):
    key, _ = add_key(keys.file, name="rpm-3", role=Role.api_client, requests_per_minute=3)
    auth = {"Authorization": f"Bearer {key}"}
    settings = make_settings(redis_url=redis_server.url)
    with serve(settings) as a, serve(settings) as b:
        codes = [httpx.post(u + CHAT, json=BODY, headers=auth, timeout=30).status_code
                 for u in (a, b, a)]
        assert codes == [503, 503, 503]  # admitted (no inference behind)
        refused = httpx.post(b + CHAT, json=BODY, headers=auth, timeout=30)
        assert refused.status_code == 429, refused.text
        assert refused.json()["error"]["code"] == "rate_limit_requests"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # The other key's quota is its own.
        other = httpx.post(b + CHAT, json=BODY, headers=keys.auth("api_client"), timeout=30)
        assert other.status_code == 503
        assert metric_value(a, "medgo_gateway_quota_store_shared") == 1.0


def test_redis_down_falls_back_to_per_replica_quotas(make_settings, serve, keys, redis_server):
    key, _ = add_key(keys.file, name="rpm-2", role=Role.api_client, requests_per_minute=2)
    auth = {"Authorization": f"Bearer {key}"}
    settings = make_settings(redis_url=redis_server.url, redis_retry_s=60)
    with serve(settings) as a, serve(settings) as b:
        assert httpx.post(a + CHAT, json=BODY, headers=auth, timeout=30).status_code == 503
        redis_server.stop()
        # Each replica now enforces the full quota on its own, and keeps serving.
        for url in (a, b):
            codes = [httpx.post(url + CHAT, json=BODY, headers=auth, timeout=30).status_code
                     for _ in range(3)]
            assert codes == [503, 503, 429], (url, codes)
            assert metric_value(url, "medgo_gateway_quota_store_shared") == 0.0
            assert metric_value(url, "medgo_gateway_quota_store_errors_total") >= 1.0


def test_redis_down_fails_closed_when_configured(make_settings, serve, keys, redis_server):
    settings = make_settings(redis_url=redis_server.url, quota_fail_closed=True)
    with serve(settings) as url:
        auth = keys.auth("api_client")
        assert httpx.post(url + CHAT, json=BODY, headers=auth, timeout=30).status_code == 503
        redis_server.stop()
        r = httpx.post(url + CHAT, json=BODY, headers=auth, timeout=30)
        assert r.status_code == 503
        assert r.json()["error"]["code"] == "quota_store_unavailable"
        assert int(r.headers["retry-after"]) >= 1


def _quotas(url: str, *, cap: int, ttl_s: float) -> Quotas:
    metrics = GatewayMetrics(CollectorRegistry())
    store = SharedStore(redis_url=url, metrics=metrics, timeout_s=1, retry_s=5,
                        fail_closed=False, slot_ttl_s=ttl_s)
    return Quotas(store, metrics, requests_per_minute=1000, tokens_per_minute=10**6,
                  max_in_flight_per_key=cap)


def test_in_flight_cap_is_shared_and_a_crashed_replicas_slot_expires(keys, redis_server):
    caller = load_keys_file(keys.file).keys[0]

    async def scenario() -> None:
        one, two = (_quotas(redis_server.url, cap=2, ttl_s=1) for _ in range(2))
        first = await one.admit(caller)
        await two.admit(caller)  # the second slot, taken on the other replica
        with pytest.raises(MedgoError) as refused:
            await one.admit(caller)
        assert (refused.value.status, refused.value.code) == (429, "too_many_in_flight")
        await first.release()
        await first.release()  # idempotent: gives back one slot, not two
        third = await two.admit(caller)
        with pytest.raises(MedgoError):
            await one.admit(caller)
        # Replica `two` "crashes" holding its slots (never releases): they expire by TTL.
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            try:
                await one.admit(caller)
                break
            except MedgoError:
                assert asyncio.get_running_loop().time() < deadline, "slots never expired"
                await asyncio.sleep(0.2)
        del third
        await one.close()
        await two.close()

    asyncio.run(scenario())


def test_tokens_charged_on_one_replica_refuse_on_the_other(keys, redis_server):
    caller = load_keys_file(keys.file).keys[0]

    async def scenario() -> None:
        one, two = (_quotas(redis_server.url, cap=8, ttl_s=60) for _ in range(2))
        lease = await one.admit(caller)
        await lease.release()
        one.charge_tokens(caller, 10**6)  # the whole minute's tokens, after the answer
        await one.close()  # waits for the background charge
        with pytest.raises(MedgoError) as refused:
            await two.admit(caller)
        assert refused.value.code == "rate_limit_tokens"
        await two.close()

    asyncio.run(scenario())
