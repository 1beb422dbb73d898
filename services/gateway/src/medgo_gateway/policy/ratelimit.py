"""Per-key quotas: requests per minute and tokens per minute, as token buckets.

A bucket holds up to one minute's allowance and refills continuously, so a key may
burst up to its quota and then proceeds at its steady rate. Requests are charged on
admission; tokens are charged after the answer, with the real usage vLLM reports
(the bucket may go negative, and the key then waits until it has refilled). The
`Retry-After` we send is the time until the bucket is positive again.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from medgo_common.errors import MedgoError


@dataclass
class _Bucket:
    capacity: float
    level: float
    stamp: float = field(default_factory=time.monotonic)

    def refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.level = min(self.capacity, self.level + (now - self.stamp) * rate)
        self.stamp = now

    def wait_s(self, need: float) -> float:
        """Seconds until the bucket holds `need` (0 if it already does)."""
        missing = need - self.level
        return 0.0 if missing <= 0 else missing / (self.capacity / 60.0)


class RateLimiter:
    """Buckets keyed by caller id; one instance per app (single event loop, no lock)."""

    def __init__(self) -> None:
        self._requests: dict[str, _Bucket] = {}
        self._tokens: dict[str, _Bucket] = {}

    @staticmethod
    def _bucket(table: dict[str, _Bucket], key: str, capacity: int) -> _Bucket:
        bucket = table.get(key)
        if bucket is None or bucket.capacity != capacity:
            bucket = _Bucket(capacity=float(capacity), level=float(capacity))
            table[key] = bucket
        bucket.refill(time.monotonic())
        return bucket

    def admit(self, key: str, *, requests_per_minute: int, tokens_per_minute: int) -> None:
        """Charge one request, or raise 429 with `Retry-After` (nothing charged then)."""
        requests = self._bucket(self._requests, key, requests_per_minute)
        tokens = self._bucket(self._tokens, key, tokens_per_minute)
        if tokens.level <= 0:
            raise _too_many("token", tokens.wait_s(1.0))
        if requests.level < 1.0:
            raise _too_many("request", requests.wait_s(1.0))
        requests.level -= 1.0

    def charge_tokens(self, key: str, count: int, *, tokens_per_minute: int) -> None:
        self._bucket(self._tokens, key, tokens_per_minute).level -= count


def _too_many(kind: str, wait_s: float) -> MedgoError:
    retry = max(1, math.ceil(wait_s))
    return MedgoError(
        429,
        f"{kind} rate limit of this API key exceeded; retry after {retry} s",
        code=f"rate_limit_{kind}s",
        headers={"Retry-After": str(retry)},
    )
