"""Keys, roles and the keys CLI, through the real HTTP server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from medgo_gateway.policy.auth import hash_key

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


EXE = str(Path(sys.executable).with_name("medgo-gateway"))


def _envelope(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}
    return error


def test_missing_and_unknown_keys_get_401(make_settings, serve, keys):
    with serve(make_settings()) as url:
        chat = {"model": "medgo", "messages": [{"role": "user", "content": "你好"}]}
        r = httpx.post(timeout=MODEL_TIMEOUT_S, url=url + "/v1/chat/completions", json=chat)
        assert _envelope(r, 401, "missing_api_key")["type"] == "authentication_error"
        assert r.headers["www-authenticate"] == "Bearer"
        r = httpx.get(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/models",
            headers={"Authorization": "Bearer mg-nope"},
        )
        _envelope(r, 401, "invalid_api_key")
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/feedback",
            json={},
            headers={"Authorization": "Basic eDp5"},
        )
        _envelope(r, 401, "missing_api_key")
        metrics = httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/metrics").text
        assert 'medgo_gateway_rejections_total{reason="unauthenticated"} 3.0' in metrics


def test_health_is_anonymous(make_settings, serve):
    with serve(make_settings()) as url:
        assert httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/healthz").json() == {"status": "ok"}
        ready = httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/readyz")
        assert ready.status_code == 503  # no inference behind this gateway
        assert "no stable inference replica" in ready.json()["reason"]
        assert (
            "medgo_gateway_spool_depth"
            in httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/metrics").text
        )


def test_roles(make_settings, serve, keys):
    rating = {"interaction_id": "7d1f3c1e-8f0e-4b7e-9a55-1c1c2b0c9d11", "verdict": "acceptable"}
    with serve(make_settings()) as url:
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/v1/feedback",
            json=rating,
            headers=keys.auth("api_client"),
        )
        _envelope(r, 403, "insufficient_role")
        r = httpx.post(
            timeout=MODEL_TIMEOUT_S, url=url + "/v1/feedback", json=rating, headers=keys.auth("ops")
        )
        _envelope(r, 403, "insufficient_role")
        for role in ("clinician", "api_client"):
            r = httpx.get(
                timeout=MODEL_TIMEOUT_S, url=url + "/admin/routing", headers=keys.auth(role)
            )
            assert _envelope(r, 403, "insufficient_role")["type"] == "permission_error"
        r = httpx.get(timeout=MODEL_TIMEOUT_S, url=url + "/admin/routing", headers=keys.auth("ops"))
        routing = r.json()
        assert routing["serving"] is False and routing["base_canary_weight"] is None
        assert [rep["url"] for rep in routing["pools"]["stable"]] == ["http://127.0.0.1:9"]
        # The weight lives in the serving manifest, not in one replica's memory.
        r = httpx.put(url + "/admin/routing", json={"canary_weight": 0.5}, headers=keys.auth("ops"))
        assert r.status_code == 405


def test_keys_cli_stores_only_the_hash_and_the_server_picks_it_up(make_settings, serve, keys):
    with serve(make_settings()) as url:
        done = subprocess.run(
            [EXE, "keys", "add", "--file", str(keys.file), "--name", "ops-2", "--role", "ops"],
            capture_output=True,
            text=True,
            check=True,
        )
        key = done.stdout.strip()
        assert key.startswith("mg-") and len(key) > 40
        stored = json.loads(keys.file.read_text())["keys"]
        entry = next(k for k in stored if k["name"] == "ops-2")
        assert entry["sha256"] == hash_key(key) and entry["role"] == "ops"
        assert key not in keys.file.read_text()
        # No restart: the running gateway re-reads the file.
        r = httpx.get(
            timeout=MODEL_TIMEOUT_S,
            url=url + "/admin/routing",
            headers={"Authorization": f"Bearer {key}"},
        )
        assert r.status_code == 200
    dup = subprocess.run(
        [EXE, "keys", "add", "--file", str(keys.file), "--name", "ops-2", "--role", "ops"],
        capture_output=True,
        text=True,
    )
    assert dup.returncode != 0 and "already exists" in dup.stderr


@pytest.mark.parametrize("problem", ["missing keys file", "port in use"])
def test_bad_start_up_is_one_clear_line(tmp_path, keys, problem):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_GATEWAY_")}
    env["MEDGO_GATEWAY_SPOOL_PATH"] = str(tmp_path / "spool.sqlite3")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        if problem == "missing keys file":
            env["MEDGO_GATEWAY_API_KEYS_FILE"] = str(tmp_path / "nope.json")
            env["MEDGO_GATEWAY_PORT"] = "0"
        else:
            env["MEDGO_GATEWAY_API_KEYS_FILE"] = str(keys.file)
            env["MEDGO_GATEWAY_PORT"] = str(busy.getsockname()[1])
        done = subprocess.run([EXE], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert ("keys add" in lines[0]) if problem == "missing keys file" else ("PORT" in lines[0])
