"""Short-lived sessions for the chat page: a signed token standing in for an API key.

A clinician signs in once with their key; the page then holds only a session token
that expires after `session_ttl_s`, so a key typed on a shared ward terminal is not
kept in the browser. A token is `ms-<key id>.<session id>.<issued ms>.<expiry>.<HMAC>`:
any gateway replica that shares `session_secret` verifies its signature without a
shared store. Ending a session before its expiry (sign-out, a removed key) is the
job of `revocation.py`, which every request consults in the shared store with the
session id and issue time carried here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from dataclasses import dataclass

from medgo_gateway.policy.auth import KEY_ID_PATTERN

SESSION_PREFIX = "ms-"
# The signed payload: key id, session id (64 random bits), issued (Unix ms), expiry (Unix s).
_PAYLOAD = re.compile(
    rf"({KEY_ID_PATTERN})\.([0-9a-f]{{16}})\.([0-9]{{1,15}})\.([0-9]{{1,12}})")


class SessionError(Exception):
    """The token is not a valid session; `expired` tells the page to sign in again."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Session:
    token: str
    key_id: str
    session_id: str  # what a sign-out revokes
    issued_ms: int  # Unix milliseconds: compared with a key's "sessions before" marker
    expires_at: int  # Unix seconds


class SessionSigner:
    """Issues and verifies session tokens with one secret."""

    def __init__(self, secret: bytes | None, ttl_s: int) -> None:
        # Without a configured secret each process signs with its own random one:
        # fine for one replica, and sessions simply end when it restarts.
        self._secret = secret or secrets.token_bytes(32)
        self.ttl_s = ttl_s

    def _sign(self, payload: str) -> str:
        mac = hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def issue(self, key_id: str, now: float | None = None) -> Session:
        now = now if now is not None else time.time()
        issued_ms, expires_at = int(now * 1000), int(now) + self.ttl_s
        session_id = secrets.token_hex(8)
        payload = f"{key_id}.{session_id}.{issued_ms}.{expires_at}"
        return Session(f"{SESSION_PREFIX}{payload}.{self._sign(payload)}", key_id, session_id,
                       issued_ms, expires_at)

    def verify(self, token: str, now: float | None = None) -> Session:
        """The session a token stands for; raises `SessionError` if forged or expired.

        Signature and expiry only: whether it was revoked is asked of the shared store.
        """
        if not token.isascii():  # headers arrive latin-1 decoded; hmac/ascii would raise
            raise SessionError("malformed session token")
        payload, _, signature = token.removeprefix(SESSION_PREFIX).rpartition(".")
        match = _PAYLOAD.fullmatch(payload)
        if match is None:
            raise SessionError("malformed session token")
        if not hmac.compare_digest(signature, self._sign(payload)):
            raise SessionError("invalid session token")
        key_id, session_id, issued_ms, expires_at = match.groups()
        if int(expires_at) <= (now if now is not None else time.time()):
            raise SessionError("the session has expired: sign in again", expired=True)
        return Session(token, key_id, session_id, int(issued_ms), int(expires_at))
