"""Where ended sessions are recorded: Redis for every replica, or this process's memory.

Three kinds of record, each voiding sessions by what their token carries
(`session.py`: session id, key id, issue time in ms):

- `ended:<session id>`: a signed-out session, until it would have expired anyway;
- `key-before:<key id>` = T: every session of the key issued at or before T (a removed
  key, or ops ending its sessions), for one session lifetime after T;
- `epoch` = T: every session issued at or before T. Written (never with a TTL) by the
  first check or sign-in that finds it missing, i.e. when Redis starts empty. Redis in
  this deployment keeps nothing on disk, so a restart loses the other records; the
  epoch turns that loss into "every session ends" (clinicians sign in again) instead
  of signed-out sessions coming back. With `maxmemory-policy volatile-ttl` (the
  shipped config) Redis evicts only keys with a TTL, so never the epoch; a record
  evicted under memory pressure is one whose session was about to expire.

The memory store's epoch is the process start, for the same reason.
"""

from __future__ import annotations

import time
from typing import Protocol

import redis.asyncio

# A key's marker only ever moves forward: a replica that notices a removed key late
# must not shorten what an earlier one wrote.
_MARK_KEY = """
local current = redis.call('GET', KEYS[1])
if current and tonumber(current) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""

# KEYS: ended:<sid>, key-before:<kid>, epoch. ARGV: issued ms, now ms. 1 = revoked.
_IS_REVOKED = """
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  redis.call('SET', KEYS[3], ARGV[2], 'NX')
  epoch = redis.call('GET', KEYS[3])
end
local issued = tonumber(ARGV[1])
if issued <= tonumber(epoch) or redis.call('EXISTS', KEYS[1]) == 1 then
  return 1
end
local before = redis.call('GET', KEYS[2])
if before and issued <= tonumber(before) then
  return 1
end
return 0
"""


def _now_ms() -> int:
    return int(time.time() * 1000)


class Revocations(Protocol):
    """Sessions ended before their expiry (see the module docstring for the records)."""

    async def open(self) -> None:
        """Make sure the epoch exists before a session is issued (sign-in)."""

    async def end_session(self, session_id: str, ttl_s: int) -> None: ...

    async def end_key(self, key_id: str, before_ms: int, ttl_s: int) -> None: ...

    async def is_revoked(self, session_id: str, key_id: str, issued_ms: int) -> bool: ...


class LocalRevocations:
    """In-process revocations (local mode: one replica, nothing to share)."""

    def __init__(self) -> None:
        self._epoch_ms = _now_ms()
        self._sessions: dict[str, float] = {}  # session id → expiry (monotonic)
        self._keys: dict[str, tuple[int, float]] = {}  # key id → (before ms, expiry)

    def _prune(self) -> None:
        now = time.monotonic()
        self._sessions = {k: t for k, t in self._sessions.items() if t > now}
        self._keys = {k: v for k, v in self._keys.items() if v[1] > now}

    async def open(self) -> None:
        return None

    async def end_session(self, session_id: str, ttl_s: int) -> None:
        self._prune()
        self._sessions[session_id] = time.monotonic() + ttl_s

    async def end_key(self, key_id: str, before_ms: int, ttl_s: int) -> None:
        self._prune()
        current = self._keys.get(key_id)
        if current is None or current[0] < before_ms:
            self._keys[key_id] = (before_ms, time.monotonic() + ttl_s)

    async def is_revoked(self, session_id: str, key_id: str, issued_ms: int) -> bool:
        now = time.monotonic()
        if issued_ms <= self._epoch_ms or self._sessions.get(session_id, 0.0) > now:
            return True
        before_ms, expiry = self._keys.get(key_id, (0, 0.0))
        return expiry > now and issued_ms <= before_ms


class RedisRevocations:
    """Revocations as Redis strings under `prefix`; a check is one script round trip."""

    def __init__(self, client: redis.asyncio.Redis, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._mark_key = client.register_script(_MARK_KEY)
        self._is_revoked = client.register_script(_IS_REVOKED)

    async def open(self) -> None:
        await self._client.set(f"{self._prefix}:epoch", _now_ms(), nx=True)

    async def end_session(self, session_id: str, ttl_s: int) -> None:
        await self._client.set(f"{self._prefix}:ended:{session_id}", 1, ex=max(1, ttl_s))

    async def end_key(self, key_id: str, before_ms: int, ttl_s: int) -> None:
        await self._mark_key(keys=[f"{self._prefix}:key-before:{key_id}"],
                             args=[before_ms, max(1, ttl_s)])

    async def is_revoked(self, session_id: str, key_id: str, issued_ms: int) -> bool:
        keys = [f"{self._prefix}:ended:{session_id}", f"{self._prefix}:key-before:{key_id}",
                f"{self._prefix}:epoch"]
        return bool(await self._is_revoked(keys=keys, args=[issued_ms, _now_ms()]))
