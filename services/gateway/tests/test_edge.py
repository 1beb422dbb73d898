"""The gateway at the network edge (deploy/k8s components/edge-tls): HTTPS from a
certificate file with HSTS on every answer, /metrics on its own plain port and not on
the API port, and /docs switched off for the offline hospital network. The TLS case
runs the real `medgo-gateway` process on a certificate made here with openssl."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_docs_off_and_metrics_on_their_own_port(make_settings, serve) -> None:
    metrics_port = free_port()
    with serve(make_settings(api_docs=False, metrics_port=metrics_port)) as url:
        for path in ("/docs", "/openapi.json", "/metrics"):
            assert httpx.get(url + path).status_code == 404, path
        assert httpx.get(url + "/healthz").status_code == 200
        assert "strict-transport-security" not in httpx.get(url + "/healthz").headers
        scrape = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert scrape.status_code == 200
        assert "medgo_gateway_" in scrape.text
    with pytest.raises(httpx.TransportError):  # closed with the app
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2)


def test_defaults_keep_docs_and_metrics_on_the_api_port(make_settings, serve) -> None:
    with serve(make_settings()) as url:
        assert httpx.get(url + "/docs").status_code == 200
        assert httpx.get(url + "/metrics").status_code == 200


def test_every_answer_gets_a_request_id_and_is_counted(make_settings, serve, keys) -> None:
    with serve(make_settings(inference_url="http://127.0.0.1:9")) as url:
        r = httpx.get(url + "/v1/models", headers={"x-request-id": "ward-7-abc"})
        assert r.status_code == 401
        assert r.headers["x-request-id"] == "ward-7-abc"
        assert r.headers["content-security-policy"] == "frame-ancestors 'none'"
        minted = httpx.get(url + "/healthz", headers={"x-request-id": "bad\tid"})
        assert minted.headers["x-request-id"].isalnum()  # not printable: a new one
        assert len(minted.headers["x-request-id"]) == 32
        assert httpx.get(url + "/healthz").headers["x-request-id"] != minted.headers[
            "x-request-id"]
        chat = {"model": "medgo", "messages": [{"role": "user", "content": "你好"}]}
        assert httpx.post(url + "/v1/chat/completions", json=chat,
                          headers=keys.auth("api_client")).status_code == 503
        assert httpx.post(url + "/v1/nowhere").status_code == 404
        scrape = httpx.get(url + "/metrics").text
    counted = {line.split(" ")[0] for line in scrape.splitlines()
               if line.startswith("medgo_gateway_requests_total{")}
    assert counted == {
        'medgo_gateway_requests_total{checkpoint="none",route="/v1/models",status="401"}',
        'medgo_gateway_requests_total{checkpoint="none",route="/v1/chat/completions",'
        'status="503"}',
        'medgo_gateway_requests_total{checkpoint="none",route="other",status="404"}',
    }  # probes and scrapes are not counted
    assert 'medgo_gateway_request_seconds_count{checkpoint="none",route="/v1/models"} 1.0' \
        in scrape


def test_tls_settings_come_in_pairs(make_settings, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TLS_CERTFILE and MEDGO_GATEWAY_TLS_KEYFILE"):
        make_settings(tls_certfile=tmp_path / "tls.crt")


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not on PATH (Debian package openssl)")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key),
         "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )
    return cert, key


def test_the_gateway_serves_https_with_hsts(
    gateway_process, certificate: tuple[Path, Path], wait
) -> None:
    cert, key = certificate
    proc = gateway_process(tls_certfile=str(cert), tls_keyfile=str(key))
    exe = str(Path(sys.executable).with_name("medgo-gateway"))
    with proc.log.open("ab") as log:
        proc.proc = subprocess.Popen([exe], env=proc.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
    https = f"https://127.0.0.1:{proc.port}"
    trust = ssl.create_default_context(cafile=str(cert))

    def up() -> bool:
        if proc.proc.poll() is not None:
            pytest.fail(f"medgo-gateway exited:\n{proc.log.read_text()[-3000:]}")
        with contextlib.suppress(httpx.HTTPError):
            return httpx.get(https + "/healthz", verify=trust, timeout=1).is_success
        return False

    try:
        wait(up, 60, "the gateway to serve HTTPS")
        answer = httpx.get(https + "/healthz", verify=trust)
        assert answer.headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains")
        with pytest.raises(httpx.TransportError):  # plain HTTP is not spoken there
            httpx.get(f"http://127.0.0.1:{proc.port}/healthz", timeout=2)
    finally:
        os.killpg(proc.proc.pid, signal.SIGTERM)
        proc.proc.wait(timeout=30)
        proc.proc = None


def test_a_missing_certificate_is_one_clear_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_GATEWAY_")}
    env |= {"MEDGO_GATEWAY_TLS_CERTFILE": str(tmp_path / "nope.crt"),
            "MEDGO_GATEWAY_TLS_KEYFILE": str(tmp_path / "nope.key"),
            "MEDGO_GATEWAY_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
            "MEDGO_GATEWAY_API_KEYS_FILE": str(tmp_path / "keys.json")}
    (tmp_path / "keys.json").write_text('{"keys": []}')
    exe = str(Path(sys.executable).with_name("medgo-gateway"))
    proc = subprocess.run([exe], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"medgo-gateway: TLS file {tmp_path / 'nope.crt'} not found; set "
        "MEDGO_GATEWAY_TLS_CERTFILE and MEDGO_GATEWAY_TLS_KEYFILE to readable PEM files")
