"""Per-key quotas: requests and tokens per minute, and requests in flight.

Counted with the `limits` library's fixed-window strategy in the `SharedStore`
(Redis across replicas, or process memory): one minute windows, one atomic
increment per charge, so the cost of a request is one Redis round trip per counter.
A fixed window lets a key spend up to twice its quota around a window boundary;
that is the price of an O(1), cost-weighted counter (tokens are charged by the
hundred, which a moving window would store one entry each).

- Requests are charged on admission; a refused request counts too, within its
  window, so a client that keeps hammering past its quota waits for the next one.
- Tokens are charged after the answer with the usage vLLM reports, off the response
  path; the counter may pass the quota, and the key is then refused until the
  window ends. `Retry-After` is the time to the end of the window.
- Requests in flight per key are capped (`max_in_flight_per_key`) across replicas;
  each slot expires after `in_flight_slot_ttl_s` in Redis, so a replica that
  crashes holding slots cannot block a key forever.

Admission control (`admission.py`) is different: it stays per replica on purpose,
because it protects this replica's event loop and connection pool, not a key's share.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from limits import RateLimitItemPerMinute
from medgo_common.errors import MedgoError

from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.auth import ApiKey
from medgo_gateway.policy.shared_store import Backend, SharedStore

logger = logging.getLogger("medgo.gateway.quota")


@dataclass
class Lease:
    """A request's in-flight slot; `release()` gives it back once (idempotent)."""

    store: SharedStore
    backend: Backend
    key: str
    slot: str
    _released: bool = field(default=False, init=False)

    async def release(self) -> None:
        if self._released:
            return
        self._released = True
        await self.store.run_on(self.backend, lambda b: b.slots.release(self.key, self.slot))

    def after(self, close: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
        """`close`, then the release: for a stream, whose slot lasts until it ends."""

        async def close_then_release() -> None:
            try:
                await close()
            finally:
                await self.release()

        return close_then_release


class Quotas:
    """Admits a caller's request against its quotas; one instance per app."""

    def __init__(
        self,
        store: SharedStore,
        metrics: GatewayMetrics,
        *,
        requests_per_minute: int,
        tokens_per_minute: int,
        max_in_flight_per_key: int,
    ) -> None:
        self._store = store
        self._metrics = metrics
        self._rpm = requests_per_minute
        self._tpm = tokens_per_minute
        self._in_flight_cap = max_in_flight_per_key
        self._charges: set[asyncio.Task] = set()

    def _limits(self, caller: ApiKey) -> tuple[RateLimitItemPerMinute, RateLimitItemPerMinute]:
        return (
            RateLimitItemPerMinute(caller.requests_per_minute or self._rpm, namespace="req"),
            RateLimitItemPerMinute(caller.tokens_per_minute or self._tpm, namespace="tok"),
        )

    async def admit(self, caller: ApiKey) -> Lease:
        """Charge one request and take an in-flight slot, or raise 429 with Retry-After."""
        requests, tokens = self._limits(caller)

        async def op(backend: Backend) -> Lease:
            limiter = backend.limiter
            if not await limiter.test(tokens, caller.id):
                stats = await limiter.get_window_stats(tokens, caller.id)
                raise _too_many("token", stats.reset_time - time.time())
            if not await limiter.hit(requests, caller.id):
                stats = await limiter.get_window_stats(requests, caller.id)
                raise _too_many("request", stats.reset_time - time.time())
            slot = await backend.slots.acquire(caller.id, self._in_flight_cap)
            if slot is None:
                raise MedgoError(
                    429, f"this API key already has {self._in_flight_cap} requests in flight",
                    code="too_many_in_flight", headers={"Retry-After": "1"},
                )
            return Lease(self._store, backend, caller.id, slot)

        try:
            return await self._store.run(op)
        except MedgoError as exc:
            self._metrics.reject(exc.code or "rate_limit")
            raise

    def charge_tokens(self, caller: ApiKey, count: int) -> None:
        """Charge the answer's tokens in the background (never delays the response)."""
        if count <= 0:
            return
        _, tokens = self._limits(caller)
        task = asyncio.create_task(
            self._store.run(lambda b: b.limiter.hit(tokens, caller.id, cost=count))
        )
        self._charges.add(task)
        task.add_done_callback(self._charged)

    def _charged(self, task: asyncio.Task) -> None:
        self._charges.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("token charge failed (%s)", type(task.exception()).__name__)

    async def close(self) -> None:
        """Finish pending token charges, then close the store's connections."""
        if self._charges:
            await asyncio.gather(*self._charges, return_exceptions=True)
        await self._store.close()


def _too_many(kind: str, wait_s: float) -> MedgoError:
    retry = max(1, math.ceil(wait_s))
    return MedgoError(
        429,
        f"{kind} rate limit of this API key exceeded; retry after {retry} s",
        code=f"rate_limit_{kind}s",
        headers={"Retry-After": str(retry)},
    )
