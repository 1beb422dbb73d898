"""Where per-key counters and ended sessions live: Redis, shared by every gateway
replica, or process memory.

Quotas must be counted once however many gateway replicas a key's requests reach
(with 10 replicas, per-process counters would give a key 10× its quota), and a
session signed out on one replica must be refused by all of them. With
`MEDGO_GATEWAY_REDIS_URL` set, counters and revocations live in Redis; empty, they
live in this process (local mode, one replica).

Redis is not allowed to take the gateway down. When a Redis call fails, this replica
counts in its own memory for `redis_retry_s` (per-replica quotas: each replica
enforces the full quota, so a key may get up to N× its quota during the outage),
raises `medgo_gateway_quota_store_errors_total` and sets
`medgo_gateway_quota_store_shared` to 0, then tries Redis again. With
`quota_fail_closed` it answers 503 instead, for deployments where an exceeded quota
is worse than refused traffic. Revocations never fall back to memory (`run_strict`):
a replica that cannot read them cannot tell a signed-out session from a live one, so
`revocation.py` refuses sessions until Redis answers again.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

import redis.asyncio
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import FixedWindowRateLimiter, RateLimiter
from limits.errors import StorageError
from medgo_common.errors import MedgoError
from redis.exceptions import RedisError

from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.revocation_store import (
    LocalRevocations,
    RedisRevocations,
    Revocations,
)

logger = logging.getLogger("medgo.gateway.quota")

T = TypeVar("T")
KEY_PREFIX = "medgo:gateway"

# One slot per request in flight, each with its own expiry, so a replica that dies
# holding slots cannot leak them past their TTL. Redis's clock, not the replicas'.
_ACQUIRE_SLOT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local ttl = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil(ttl))
return 1
"""


class Slots(Protocol):
    """Requests in flight per key, bounded by a cap."""

    async def acquire(self, key: str, cap: int) -> str | None:
        """A slot id, or None when `key` already holds `cap` slots."""

    async def release(self, key: str, slot: str) -> None: ...


class LocalSlots:
    """In-process slots (local mode, or while Redis is down); no TTL needed here."""

    def __init__(self) -> None:
        self._held: dict[str, int] = {}

    async def acquire(self, key: str, cap: int) -> str | None:
        held = self._held.get(key, 0)
        if held >= cap:
            return None
        self._held[key] = held + 1
        return "local"

    async def release(self, key: str, slot: str) -> None:
        held = self._held.get(key, 0) - 1
        if held > 0:
            self._held[key] = held
        else:
            self._held.pop(key, None)


class RedisSlots:
    """Slots as members of a sorted set per key, scored by their expiry time."""

    def __init__(self, client: redis.asyncio.Redis, ttl_s: float) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._acquire = client.register_script(_ACQUIRE_SLOT)

    @staticmethod
    def _key(key: str) -> str:
        return f"{KEY_PREFIX}:inflight:{key}"

    async def acquire(self, key: str, cap: int) -> str | None:
        slot = uuid.uuid4().hex
        granted = await self._acquire(keys=[self._key(key)], args=[self._ttl_s, cap, slot])
        return slot if granted else None

    async def release(self, key: str, slot: str) -> None:
        await self._client.zrem(self._key(key), slot)


@dataclass(frozen=True)
class Backend:
    """One place to count in: a fixed-window limiter, in-flight slots, revocations."""

    name: str  # "redis" or "memory"
    limiter: RateLimiter
    slots: Slots
    revocations: Revocations


def _memory_backend() -> Backend:
    return Backend("memory", FixedWindowRateLimiter(MemoryStorage()), LocalSlots(),
                   LocalRevocations())


class StoreUnavailable(Exception):
    """Redis is configured but does not answer (or this replica is backing off)."""


class SharedStore:
    """Runs each counter operation on Redis when it can, else on this process's memory."""

    def __init__(
        self,
        *,
        redis_url: str,
        metrics: GatewayMetrics,
        timeout_s: float,
        retry_s: float,
        fail_closed: bool,
        slot_ttl_s: float,
    ) -> None:
        self._metrics = metrics
        self._retry_s = retry_s
        self._fail_closed = fail_closed
        self._local = _memory_backend()
        self._shared: Backend | None = None
        self._client: redis.asyncio.Redis | None = None
        self._retry_at = 0.0
        self._degraded = False
        if redis_url:
            pool = redis.asyncio.ConnectionPool.from_url(
                redis_url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
            )
            self._client = redis.asyncio.Redis(connection_pool=pool)
            storage = RedisStorage(
                "async+" + redis_url, implementation="redispy", connection_pool=pool,
                key_prefix=f"{KEY_PREFIX}:quota", wrap_exceptions=True,
            )
            self._shared = Backend(
                "redis", FixedWindowRateLimiter(storage), RedisSlots(self._client, slot_ttl_s),
                RedisRevocations(self._client, f"{KEY_PREFIX}:sessions"),
            )
        metrics.quota_store_shared.set(1 if self._shared else 0)

    @property
    def shared(self) -> bool:
        """Whether counters are shared across replicas right now."""
        return self._shared is not None and not self._degraded

    async def run(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        """`op(backend)` on Redis if configured and not in back-off, else locally.

        Only Redis failures switch backends; a `MedgoError` from `op` (a quota
        refusal) passes through unchanged.
        """
        if self._shared is not None:
            done, result = await self._on_redis(op)
            if done:
                return result
        if self._shared is not None and self._fail_closed:
            raise MedgoError(
                503, "quotas cannot be checked right now; retry shortly",
                code="quota_store_unavailable", headers={"Retry-After": str(self.retry_after_s)},
            )
        return await op(self._local)

    async def run_strict(self, op: Callable[[Backend], Awaitable[T]]) -> T:
        """`op(backend)` on Redis, or on memory in local mode; never falls back.

        Raises `StoreUnavailable` when Redis is configured but fails now or is in
        back-off (so an outage costs each request no timeout, only the first ones).
        """
        if self._shared is None:
            return await op(self._local)
        done, result = await self._on_redis(op)
        if done:
            return result
        raise StoreUnavailable

    async def _on_redis(self, op: Callable[[Backend], Awaitable[T]]) -> tuple[bool, T | None]:
        """(True, `op` on Redis) unless Redis is in back-off or fails now: (False, None),
        and the failure starts a back-off. Only Redis failures count as failures."""
        assert self._shared is not None
        if time.monotonic() < self._retry_at:
            return False, None
        try:
            result = await op(self._shared)
        except (RedisError, StorageError, OSError) as exc:
            self._down(exc)
            return False, None
        self._up()
        return True, result

    @property
    def retry_after_s(self) -> int:
        """What to put in `Retry-After` while the store is down."""
        return max(1, math.ceil(self._retry_s))

    async def run_on(self, backend: Backend, op: Callable[[Backend], Awaitable[T]]) -> None:
        """`op` on a given backend (releasing a slot where it was taken); errors logged."""
        try:
            await op(backend)
        except (RedisError, StorageError, OSError) as exc:
            # The slot expires by its TTL in Redis; nothing else to do.
            self._down(exc)

    def _down(self, exc: Exception) -> None:
        self._metrics.quota_store_errors.inc()
        self._metrics.quota_store_shared.set(0)
        self._retry_at = time.monotonic() + self._retry_s
        if not self._degraded:
            self._degraded = True
            mode = "refusing requests" if self._fail_closed else "counting per replica"
            logger.warning("shared store (Redis) unavailable (%s); quotas: %s; sessions: "
                           "refused", type(exc).__name__, mode)

    def _up(self) -> None:
        if self._degraded:
            self._degraded = False
            self._metrics.quota_store_shared.set(1)
            logger.info("shared store (Redis) reachable again; quotas shared across "
                        "replicas, sessions checked")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            await self._client.connection_pool.disconnect()
