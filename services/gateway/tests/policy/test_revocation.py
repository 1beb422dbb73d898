"""Sessions revoked across gateway replicas, on a real Redis (Debian's `redis-server`).

Two real gateways (uvicorn, one app each) share one `redis-server` and one session
secret, as replicas behind a load balancer do. Skipped with the reason when the
binary is missing (the conftest's `redis_server`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
from medgo_gateway import cli

from ..conftest import metric_value, wait_until

TIMEOUT_S = 30
SECRET = "one-secret-for-every-replica-of-the-test"


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _sign_in(url: str, key: str) -> str:
    r = httpx.post(url + "/v1/sessions", headers=_bearer(key), timeout=TIMEOUT_S)
    assert r.status_code == 201, r.text
    return r.json()["token"]


def _call(url: str, token: str) -> httpx.Response:
    """A cheap authenticated call (no inference, no feedback service behind it)."""
    return httpx.get(url + "/v1/feedback/reasons", headers=_bearer(token), timeout=TIMEOUT_S)


def _code(response: httpx.Response) -> tuple[int, str | None]:
    error = response.json().get("error") if response.status_code >= 400 else None
    return response.status_code, error and error["code"]


def test_sign_out_on_one_replica_is_refused_on_the_other_at_once(
    make_settings, serve, keys, redis_server
):
    settings = make_settings(redis_url=redis_server.url, session_secret=SECRET)
    with serve(settings) as a, serve(settings) as b:
        token, other_tab = _sign_in(a, keys.clinician), _sign_in(a, keys.clinician)
        assert _call(b, token).status_code == 200
        out = httpx.delete(a + "/v1/sessions", headers=_bearer(token), timeout=TIMEOUT_S)
        assert out.status_code == 204, out.text
        assert _code(_call(b, token)) == (401, "session_revoked")  # the very next request
        assert _code(_call(a, token)) == (401, "session_revoked")
        assert _call(b, other_tab).status_code == 200


def test_a_key_removed_on_one_replica_ends_its_sessions_on_every_replica(
    make_settings, serve, keys, redis_server, tmp_path: Path
):
    # Replica b has not received the new keys file yet (a Secret reaches pods one by one).
    stale = tmp_path / "b" / "api_keys.json"
    stale.parent.mkdir()
    shutil.copy(keys.file, stale)
    a_settings = make_settings(redis_url=redis_server.url, session_secret=SECRET)
    b_settings = make_settings(redis_url=redis_server.url, session_secret=SECRET,
                               api_keys_file=stale, spool_path=tmp_path / "b" / "spool.db")
    with serve(a_settings) as a, serve(b_settings) as b:
        token = _sign_in(b, keys.clinician)
        assert _call(a, token).status_code == 200
        assert cli.main(["keys", "remove", "--file", str(keys.file), "dr-test"]) == 0
        # Any request makes a notice the change; it voids the key's sessions for all.
        assert _call(a, keys.ops).status_code == 200
        assert _code(_call(b, token)) == (401, "session_revoked")
        assert _code(_call(a, token)) == (401, "invalid_session")  # a knows the key is gone
        # The key itself works on b until b's file changes too (docs/gateway.md).
        assert _call(b, keys.clinician).status_code == 200
        metrics = httpx.get(a + "/metrics", timeout=TIMEOUT_S).text
        assert 'medgo_gateway_session_revocations_total{reason="key_removed"} 1.0' in metrics
    assert cli.main(["keys", "remove", "--file", str(keys.file), "dr-test"]) == 2


def test_redis_outage_fails_closed_for_sessions_only(make_settings, serve, keys, redis_server):
    settings = make_settings(redis_url=redis_server.url, session_secret=SECRET,
                             redis_retry_s=0.5)
    with serve(settings) as a, serve(settings) as b:
        signed_out, kept = _sign_in(a, keys.clinician), _sign_in(a, keys.clinician)
        assert _call(b, signed_out).status_code == 200

        redis_server.pause()  # unreachable, data intact (a partition)
        refused = _call(a, kept)
        assert _code(refused) == (503, "session_store_unavailable")
        assert int(refused.headers["retry-after"]) >= 1
        assert _call(a, keys.clinician).status_code == 200  # API keys do not need Redis
        r = httpx.post(a + "/v1/sessions", headers=_bearer(keys.clinician), timeout=TIMEOUT_S)
        assert _code(r) == (503, "session_store_unavailable")
        out = httpx.delete(a + "/v1/sessions", headers=_bearer(signed_out), timeout=TIMEOUT_S)
        assert (out.status_code, out.json()) == (202, {"status": "queued"})
        assert metric_value(a, "medgo_gateway_quota_store_shared") == 0.0
        assert metric_value(a, "medgo_gateway_quota_store_errors_total") >= 1.0

        redis_server.resume()
        wait_until(lambda: _call(a, kept).status_code == 200, 20, "a to reach Redis again")
        # a wrote the sign-out it kept before that check: b refuses the session too.
        assert _code(_call(b, signed_out)) == (401, "session_revoked")
        assert _call(b, kept).status_code == 200

        # A restart loses every record (no persistence): every session ends, rather
        # than the signed-out ones coming back.
        redis_server.stop()
        redis_server.start()
        wait_until(lambda: _call(b, kept).status_code == 401, 20, "b to reach Redis again")
        assert _code(_call(a, kept)) == (401, "session_revoked")
        assert _call(a, _sign_in(b, keys.clinician)).status_code == 200
