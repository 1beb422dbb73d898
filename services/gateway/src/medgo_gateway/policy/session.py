"""Short-lived sessions for the chat page: a signed token standing in for an API key.

A clinician signs in once with their key; the page then holds only a session token
that expires after `session_ttl_s`, so a key typed on a shared ward terminal is not
kept in the browser. Tokens are stateless (`ms-<key id>.<expiry>.<HMAC-SHA256>`):
any gateway replica that shares `session_secret` verifies them without a shared store,
and removing the key from the keys file ends its sessions at once, because every
request looks the key id up again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

SESSION_PREFIX = "ms-"


class SessionError(Exception):
    """The token is not a valid session; `expired` tells the page to sign in again."""

    def __init__(self, message: str, *, expired: bool = False) -> None:
        super().__init__(message)
        self.expired = expired


@dataclass(frozen=True)
class Session:
    token: str
    key_id: str
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
        expires_at = int(now if now is not None else time.time()) + self.ttl_s
        payload = f"{key_id}.{expires_at}"
        return Session(f"{SESSION_PREFIX}{payload}.{self._sign(payload)}", key_id, expires_at)

    def verify(self, token: str, now: float | None = None) -> Session:
        """The session a token stands for; raises `SessionError` if forged or expired."""
        if not token.isascii():  # headers arrive latin-1 decoded; hmac/ascii would raise
            raise SessionError("malformed session token")
        try:
            key_id, expiry, signature = token.removeprefix(SESSION_PREFIX).split(".")
            expires_at = int(expiry)
        except ValueError:
            raise SessionError("malformed session token") from None
        if not hmac.compare_digest(signature, self._sign(f"{key_id}.{expires_at}")):
            raise SessionError("invalid session token")
        if expires_at <= (now if now is not None else time.time()):
            raise SessionError("the session has expired: sign in again", expired=True)
        return Session(token, key_id, expires_at)
