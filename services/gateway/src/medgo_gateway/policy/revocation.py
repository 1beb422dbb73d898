"""Revocable sessions: sign-out and key removal end sessions at once on every replica.

A session token is signed, not stored (`session.py`), so ending one before its expiry
needs a record that every replica reads. The shared store (`shared_store.py`: Redis
in compose and Kubernetes, this process's memory in local mode) holds

- per signed-out session, its id, until the session would have expired anyway;
- per removed (or re-hashed) key, "its sessions issued at or before T are void", for
  one session lifetime. The first replica whose keys file no longer has the key
  writes it (`KeyStore.take_removed`), so the key's sessions end everywhere although
  the other replicas may not have the new file yet; ops can write it at once with
  `DELETE /admin/keys/{id}/sessions` (no need to wait for the file to reach a pod).

Every request made with a session asks the store (one round trip); the records, and
the epoch that makes a Redis restart end every session rather than revive signed-out
ones, are described in `revocation_store.py`.

**Redis down: sessions fail closed.** A replica that cannot read the revocations
cannot tell a signed-out session from a live one, and a session opens a clinician's
conversations, so session requests get 503 `session_store_unavailable` with
`Retry-After` (the page keeps its session and shows the service as unavailable) until
Redis answers again. API keys keep working: their check is the keys file, not the
store. Signing in needs the store too (503 meanwhile), so the page never holds a
session it cannot use. A sign-out or key removal during the outage is kept by this
replica and written by its first authenticated request once Redis answers (the
caller gets 202 instead of 204); meanwhile the session is refused everywhere anyway.
A replica that dies during the outage loses what it kept (the page has dropped the
token in any case).
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from medgo_common.errors import MedgoError

from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.auth import KeyStore
from medgo_gateway.policy.session import Session
from medgo_gateway.policy.shared_store import Backend, SharedStore, StoreUnavailable

logger = logging.getLogger("medgo.gateway.sessions")
T = TypeVar("T")

# Revocations kept while Redis is down; beyond this the oldest are dropped (logged).
# Each needs a validly signed session or a keys-file change, so this bounds memory
# against someone signing in and out in a loop during an outage, not real use.
MAX_PENDING = 100_000
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


class SessionRevocations:
    """Checks and records ended sessions in the shared store; one instance per app."""

    def __init__(self, store: SharedStore, metrics: GatewayMetrics, ttl_s: int) -> None:
        self._store = store
        self._metrics = metrics
        self._ttl_s = ttl_s
        self._pending_sessions: dict[str, int] = {}  # session id → its expiry (Unix s)
        self._pending_keys: dict[str, int] = {}  # key id → "issued at or before" (Unix ms)

    async def ready(self) -> None:
        """Before issuing a session: the store answers (else 503) and has its epoch."""

        async def op(backend: Backend) -> None:
            await backend.revocations.open()

        await self._strict(op)

    async def check(self, session: Session) -> None:
        """Pass if the session is live; 401 `session_revoked`, or 503 if unknowable."""

        async def op(backend: Backend) -> bool:
            await self._flush(backend)
            return await backend.revocations.is_revoked(
                session.session_id, session.key_id, session.issued_ms)

        if await self._strict(op):
            self._metrics.reject("unauthenticated")
            raise MedgoError(401, "this session was ended (signed out, or its key removed): "
                             "sign in again", code="session_revoked", headers=_CHALLENGE)

    async def end_session(self, session: Session) -> bool:
        """Revoke one session; False if Redis is down and it was kept here for later."""
        self._metrics.session_revocations.labels(reason="sign_out").inc()

        async def op(backend: Backend) -> None:
            await self._flush(backend)
            await backend.revocations.end_session(
                session.session_id, math.ceil(session.expires_at - time.time()))

        try:
            await self._store.run_strict(op)
        except StoreUnavailable:
            self._keep(self._pending_sessions, session.session_id, session.expires_at)
            return False
        return True

    async def end_key(self, key_id: str, *, reason: str) -> bool:
        """Void every session of `key_id` issued until now; False if kept for later."""
        self._metrics.session_revocations.labels(reason=reason).inc()
        before_ms = int(time.time() * 1000)

        async def op(backend: Backend) -> None:
            await self._flush(backend)
            await backend.revocations.end_key(key_id, before_ms, self._ttl_s + 1)

        try:
            await self._store.run_strict(op)
        except StoreUnavailable:
            self._keep(self._pending_keys, key_id,
                       max(before_ms, self._pending_keys.get(key_id, 0)))
            return False
        return True

    async def sync(self, keys: KeyStore) -> None:
        """On every authenticated request: void the sessions of keys this replica just
        saw leave the keys file, and share what was kept during an outage."""
        for key_id in keys.take_removed():
            logger.info("key %s left the keys file: its sessions end", key_id)
            await self.end_key(key_id, reason="key_removed")
        if self._pending_sessions or self._pending_keys:
            with contextlib.suppress(StoreUnavailable):
                await self._store.run_strict(self._flush)

    async def _strict(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        try:
            return await self._store.run_strict(op)
        except StoreUnavailable:
            self._metrics.reject("session_store_unavailable")
            raise MedgoError(
                503, "sessions cannot be checked right now; retry shortly",
                code="session_store_unavailable",
                headers={"Retry-After": str(self._store.retry_after_s)},
            ) from None

    def _keep(self, pending: dict[str, int], name: str, value: int) -> None:
        pending[name] = value
        if len(pending) > MAX_PENDING:
            del pending[next(iter(pending))]
            logger.warning("more than %d revocations wait for Redis; the oldest was dropped",
                           MAX_PENDING)

    async def _flush(self, backend: Backend) -> None:
        """Write what was kept during an outage; an entry leaves only once written (two
        requests may flush at once: writing an entry twice is harmless)."""
        if not (self._pending_sessions or self._pending_keys):
            return
        now = time.time()
        for session_id, expires_at in list(self._pending_sessions.items()):
            if expires_at > now:
                await backend.revocations.end_session(session_id, math.ceil(expires_at - now))
            if self._pending_sessions.get(session_id) == expires_at:
                del self._pending_sessions[session_id]
        for key_id, before_ms in list(self._pending_keys.items()):
            left_s = before_ms / 1000 + self._ttl_s + 1 - now
            if left_s > 0:
                await backend.revocations.end_key(key_id, before_ms, math.ceil(left_s))
            if self._pending_keys.get(key_id) == before_ms:  # not moved on meanwhile
                del self._pending_keys[key_id]
        logger.info("revocations kept during the Redis outage are now shared")
