"""Chat-page sessions and the page's static files, through the real HTTP server."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from medgo_common.schemas.feedback import REASON_LABELS_ZH, Reason
from medgo_gateway.policy.session import SessionError, SessionSigner

TIMEOUT_S = 30


def _sign_in(url: str, key: str) -> dict:
    r = httpx.post(url + "/v1/sessions", headers={"Authorization": f"Bearer {key}"},
                   timeout=TIMEOUT_S)
    assert r.status_code == 201, r.text
    return r.json()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _reasons(url: str, token: str) -> httpx.Response:
    """A cheap authenticated call (no inference, no feedback service behind it)."""
    return httpx.get(url + "/v1/feedback/reasons", headers=_bearer(token), timeout=TIMEOUT_S)


def test_signer_rejects_forged_tampered_and_expired_tokens():
    signer = SessionSigner(b"secret", ttl_s=60)
    session = signer.issue("u_0123456789abcdef", now=1000)
    assert signer.verify(session.token, now=1059) == session
    assert (session.issued_ms, session.expires_at) == (1_000_000, 1060)
    assert session.session_id != signer.issue("u_0123456789abcdef", now=1000).session_id
    with pytest.raises(SessionError) as expired:
        signer.verify(session.token, now=1060)
    assert expired.value.expired
    key_id, sid, issued, expiry, signature = session.token.removeprefix("ms-").split(".")
    for forged in (
        f"ms-{key_id}.{sid}.{issued}.{int(expiry) + 3600}.{signature}",  # extended by hand
        f"ms-u_ffffffffffffffff.{sid}.{issued}.{expiry}.{signature}",  # someone else's id
        f"ms-{key_id}.{'0' * 16}.{issued}.{expiry}.{signature}",  # dodging a sign-out
        f"ms-{key_id}.{sid}.{int(issued) + 10**6}.{expiry}.{signature}",  # dodging a removal
        SessionSigner(b"other", ttl_s=60).issue(key_id, now=1000).token,  # other secret
        "ms-garbage",
        f"ms-{key_id}.{expiry}.{signature}",  # the format before revocation: sign in again
        f"ms-{key_id}.{sid}.{issued}.{expiry}\n.{signature}",
        f"ms-{key_id}.{sid}.{issued}.{expiry}.{signature[:-1]}é",  # non-ASCII: 401, not 500
    ):
        with pytest.raises(SessionError) as bad:
            signer.verify(forged, now=1001)
        assert not bad.value.expired


def test_session_acts_as_its_key(make_settings, serve, keys):
    with serve(make_settings()) as url:
        session = _sign_in(url, keys.clinician)
        assert session["token"].startswith("ms-")
        assert keys.clinician not in session["token"]
        assert session["role"] == "clinician"
        assert session["department"] == "心内科"
        r = httpx.get(url + "/v1/feedback/reasons", headers=_bearer(session["token"]),
                      timeout=TIMEOUT_S)
        assert r.status_code == 200
        assert r.json() == [{"value": r.value, "label": REASON_LABELS_ZH[r]} for r in Reason]
        # The session carries the key's role: an api-client session may not rate.
        api_session = _sign_in(url, keys.api_client)
        rating = {"interaction_id": "00000000-0000-0000-0000-000000000001",
                  "verdict": "acceptable"}
        r = httpx.post(url + "/v1/feedback", json=rating, headers=_bearer(api_session["token"]),
                       timeout=TIMEOUT_S)
        assert r.status_code == 403
        # A session cannot mint a longer-lived one: signing in needs the key itself.
        r = httpx.post(url + "/v1/sessions", headers=_bearer(session["token"]), timeout=TIMEOUT_S)
        assert r.status_code == 403
        assert r.json()["error"]["code"] == "key_required"


def test_revoking_the_key_ends_its_sessions(make_settings, serve, keys):
    with serve(make_settings()) as url:
        session = _sign_in(url, keys.clinician)
        reasons = url + "/v1/feedback/reasons"
        assert httpx.get(reasons, headers=_bearer(session["token"]),
                         timeout=TIMEOUT_S).status_code == 200
        data = json.loads(keys.file.read_text())
        data["keys"] = [k for k in data["keys"] if k["id"] != keys.clinician_id]
        keys.file.write_text(json.dumps(data))
        r = httpx.get(reasons, headers=_bearer(session["token"]), timeout=TIMEOUT_S)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "invalid_session"


def test_expired_session_code_and_sessions_from_before_a_restart(make_settings, serve, keys):
    secret = "shared-between-replicas"
    signer = SessionSigner(secret.encode(), ttl_s=60)
    # Issued before this gateway started: its memory store (local mode) lost any sign-out
    # of it, so it is refused rather than trusted.
    before_start = signer.issue(keys.clinician_id)
    with serve(make_settings(session_secret=secret, session_ttl_s=60)) as url:
        # A token from another replica with the same secret, issued two minutes ago.
        old = signer.issue(keys.clinician_id, now=time.time() - 120)
        r = httpx.get(url + "/v1/feedback/reasons", headers=_bearer(old.token),
                      timeout=TIMEOUT_S)
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "session_expired"
        r = httpx.get(url + "/v1/feedback/reasons", headers=_bearer(before_start.token),
                      timeout=TIMEOUT_S)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "session_revoked")
        fresh = signer.issue(keys.clinician_id)
        r = httpx.get(url + "/v1/feedback/reasons", headers=_bearer(fresh.token),
                      timeout=TIMEOUT_S)
        assert r.status_code == 200


def test_sign_out_ends_the_session_on_the_server(make_settings, serve, keys):
    with serve(make_settings()) as url:
        first, second = _sign_in(url, keys.clinician), _sign_in(url, keys.clinician)
        assert _reasons(url, first["token"]).status_code == 200
        out = httpx.delete(url + "/v1/sessions", headers=_bearer(first["token"]),
                           timeout=TIMEOUT_S)
        assert out.status_code == 204, out.text
        r = _reasons(url, first["token"])
        assert (r.status_code, r.json()["error"]["code"]) == (401, "session_revoked")
        assert r.headers["www-authenticate"] == "Bearer"
        # Only that session: the clinician's other tab, and the key, go on.
        assert _reasons(url, second["token"]).status_code == 200
        assert _reasons(url, keys.clinician).status_code == 200
        # Signing out twice is fine; the key is not a session; no token is 401.
        assert httpx.delete(url + "/v1/sessions", headers=_bearer(first["token"]),
                            timeout=TIMEOUT_S).status_code == 204
        r = httpx.delete(url + "/v1/sessions", headers=keys.auth("clinician"),
                         timeout=TIMEOUT_S)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "session_required")
        assert httpx.delete(url + "/v1/sessions", timeout=TIMEOUT_S).status_code == 401
        assert httpx.delete(url + "/v1/sessions", headers=_bearer("mg-not-a-key"),
                            timeout=TIMEOUT_S).status_code == 401
        metrics = httpx.get(url + "/metrics", timeout=TIMEOUT_S).text
        assert 'medgo_gateway_session_revocations_total{reason="sign_out"} 2.0' in metrics


def test_ops_end_every_session_of_a_key(make_settings, serve, keys):
    with serve(make_settings()) as url:
        session = _sign_in(url, keys.clinician)
        end = f"{url}/admin/keys/{keys.clinician_id}/sessions"
        assert httpx.delete(end, headers=keys.auth("clinician"),
                            timeout=TIMEOUT_S).status_code == 403
        assert httpx.delete(end, headers=keys.auth("ops"), timeout=TIMEOUT_S).status_code == 204
        r = _reasons(url, session["token"])
        assert (r.status_code, r.json()["error"]["code"]) == (401, "session_revoked")
        # The key itself still works, and a new sign-in gives a live session.
        assert _reasons(url, _sign_in(url, keys.clinician)["token"]).status_code == 200
        bad = httpx.delete(f"{url}/admin/keys/not-an-id/sessions", headers=keys.auth("ops"),
                           timeout=TIMEOUT_S)
        assert bad.status_code == 400


def test_page_is_served_without_a_key_with_a_strict_csp(make_settings, serve):
    with serve(make_settings()) as url:
        page = httpx.get(url + "/", timeout=TIMEOUT_S)
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert 'lang="zh-CN"' in page.text
        # Every asset the page references is bundled here (no CDN on a hospital network).
        assert '/ui/app.js"' in page.text and '/ui/app.css"' in page.text
        for asset in ("/ui/app.js", "/ui/markdown.js", "/ui/app.css"):
            r = httpx.get(url + asset, timeout=TIMEOUT_S)
            assert r.status_code == 200, asset
            assert "http://" not in r.text and "https://" not in r.text, asset
        assert httpx.get(url + "/ui/app.js", timeout=TIMEOUT_S).headers[
            "content-type"].startswith(("text/javascript", "application/javascript"))
        assert httpx.get(url + "/ui/nope.js", timeout=TIMEOUT_S).status_code == 404
        # The page is public; the API behind it is not.
        assert httpx.get(url + "/v1/feedback/reasons", timeout=TIMEOUT_S).status_code == 401


def test_every_ui_route_carries_the_csp_and_a_non_ascii_token_is_401(make_settings, serve):
    """Issue 18: `/ui/index.html` served the page without the CSP; a non-ASCII session
    token raised inside hmac (500); no other answer said it may not be framed."""
    with serve(make_settings()) as url:
        for path in ("/", "/ui/index.html", "/ui/app.js", "/ui/markdown.js", "/ui/app.css"):
            for method in ("GET", "HEAD") if path != "/" else ("GET",):
                headers = httpx.request(method, url + path, timeout=TIMEOUT_S).headers
                csp = headers["content-security-policy"]
                assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
                assert headers["x-content-type-options"] == "nosniff", path
        # Nothing else the gateway serves can be framed either: /docs (Swagger UI,
        # from a CDN, so no script policy), an error page, the API.
        for path in ("/docs", "/ui/", "/ui/nope.html", "/v1/models"):
            r = httpx.get(url + path, timeout=TIMEOUT_S)
            assert r.headers["content-security-policy"] == "frame-ancestors 'none'", path
        r = httpx.get(
            url + "/v1/feedback/reasons",
            headers={"Authorization": "Bearer ms-u_0.1.\u00e9".encode("latin-1")},
            timeout=TIMEOUT_S,
        )
        assert r.status_code == 401 and r.json()["error"]["type"]
