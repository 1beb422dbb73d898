"""Admission control: a bounded number of requests in flight to inference, plus a
bounded, time-limited queue in front of them.

vLLM queues without limit; under overload every request would slow down together
until clients time out. Here the excess waits at most `queue_timeout_s` in a queue of
at most `max_queue`, and beyond that gets an immediate 503 with `Retry-After`, which
a client can act on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from medgo_common.errors import MedgoError


class Admission:
    """Semaphore with a bounded wait list; `on_reject(reason)` counts refusals."""

    def __init__(
        self,
        *,
        max_in_flight: int,
        max_queue: int,
        queue_timeout_s: float,
        retry_after_s: int = 1,
        on_reject: Callable[[str], None] | None = None,
    ) -> None:
        self._slots = asyncio.Semaphore(max_in_flight)
        self.max_in_flight = max_in_flight
        self.max_queue = max_queue
        self.queue_timeout_s = queue_timeout_s
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.waiting = 0
        self._on_reject = on_reject or (lambda _reason: None)

    def _reject(self, reason: str, message: str) -> MedgoError:
        self._on_reject(reason)
        return MedgoError(
            503,
            message,
            code=reason,
            headers={"Retry-After": str(self.retry_after_s)},
        )

    async def acquire(self) -> None:
        """Take a slot, waiting in the bounded queue if needed, or raise 503."""
        if self.in_flight >= self.max_in_flight or self.waiting:
            if self.waiting >= self.max_queue:
                raise self._reject("queue_full", "the model is at capacity; retry shortly")
            self.waiting += 1
            try:
                async with asyncio.timeout(self.queue_timeout_s):
                    await self._slots.acquire()
            except TimeoutError:
                raise self._reject(
                    "queue_timeout", "the model is at capacity; retry shortly"
                ) from None
            finally:
                self.waiting -= 1
        else:
            await self._slots.acquire()
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self.acquire()
        try:
            yield
        finally:
            self.release()
