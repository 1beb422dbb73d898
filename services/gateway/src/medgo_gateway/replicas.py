"""Inference replicas: where they are, which adapters each serves, which are healthy.

- **Discovery.** A fixed list (local mode: `MEDGO_GATEWAY_INFERENCE_URL=url1,url2`) or
  the A records of a Kubernetes headless Service (`MEDGO_GATEWAY_INFERENCE_DNS=
  inference-headless:8001`), re-resolved every refresh. If the name does not resolve,
  the last known replicas are kept; at start-up that is one clear log line.
- **What each serves.** Every `replica_refresh_s` each replica's `GET /v1/models` is
  read: a replica "serves" an adapter when its list has it. A replica whose probe fails
  serves nothing until a probe succeeds again.
- **Ejection.** A replica that fails a request (refused connection, 5xx, timeout) is
  skipped for a back-off (`eject_s`, doubling per consecutive failure, at most
  `MAX_EJECT_S`), so one dead pod costs one failed attempt, not one per request.
- **Choice.** Among healthy replicas serving the adapter, the one with the fewest
  requests in flight (ties broken at random, so idle replicas share the load).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
from medgo_common.schemas.serving import SERVED_MODEL_NAME

logger = logging.getLogger("medgo.gateway.replicas")
MODELS_PATH = "/v1/models"
MAX_EJECT_S = 60.0
# What a request to a replica raises when the replica, not the request, failed:
# aiohttp's errors, and `TimeoutError` for a total timeout (not a `ClientError`).
REQUEST_ERRORS = (aiohttp.ClientError, TimeoutError)


@dataclass
class Replica:
    url: str
    in_flight: int = 0
    models: frozenset[str] = frozenset()
    adapters: tuple[str, ...] = ()  # LoRA adapters in listing order (first = launch default)
    ejected_until: float = 0.0
    failures: int = 0
    last_error: str | None = None

    def healthy(self, now: float) -> bool:
        return bool(self.models) and now >= self.ejected_until

    def describe(self, now: float) -> dict:
        return {
            "url": self.url,
            "healthy": self.healthy(now),
            "in_flight": self.in_flight,
            "adapters": sorted(self.models),
            "ejected_for_s": round(max(0.0, self.ejected_until - now), 1),
            "last_error": self.last_error,
        }


class ReplicaSource:
    """The replica URLs: a fixed list, or `host:port` resolved through DNS each time."""

    def __init__(self, urls: Iterable[str] = (), dns: str | None = None) -> None:
        self.urls = tuple(u.rstrip("/") for u in urls)
        self.dns = dns
        self.describe = f"DNS name {dns}" if dns else f"replica list {', '.join(self.urls)}"

    async def resolve(self) -> tuple[str, ...]:
        """The replica URLs now; raises OSError when the DNS name does not resolve."""
        if not self.dns:
            return self.urls
        host, _, port = self.dns.rpartition(":")
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, int(port), family=socket.AF_INET, type=socket.SOCK_STREAM
        )
        return tuple(sorted({f"http://{info[4][0]}:{port}" for info in infos}))


@dataclass
class ReplicaPool:
    """One pool of replicas of the same base model (the stable pool, or a base canary)."""

    name: str
    source: ReplicaSource
    client: aiohttp.ClientSession
    headers: dict[str, str]
    probe_timeout_s: float
    eject_s: float
    replicas: dict[str, Replica] = field(default_factory=dict)
    _warned: str | None = None

    async def refresh(self) -> None:
        """Re-discover, then re-read what every replica serves (concurrently)."""
        try:
            urls = await self.source.resolve()
        except (OSError, ValueError) as exc:
            self._warn(f"{self.name} inference replicas: {self.source.describe} does not "
                       f"resolve ({exc}); keeping {len(self.replicas)} known replica(s)")
            await asyncio.gather(*(self._probe(r) for r in self.replicas.values()))
            return
        self.replicas = {u: self.replicas.get(u) or Replica(u) for u in urls}
        await asyncio.gather(*(self._probe(r) for r in self.replicas.values()))
        if not self.replicas:
            self._warn(f"{self.name} inference replicas: {self.source.describe} names none")
        elif not any(r.models for r in self.replicas.values()):
            errors = "; ".join(f"{r.url}: {r.last_error}" for r in self.replicas.values())
            self._warn(f"{self.name} inference replicas: none of {self.source.describe} "
                       f"answers ({errors})")
        else:
            self._warned = None

    async def _probe(self, replica: Replica) -> None:
        try:
            async with self.client.get(
                replica.url + MODELS_PATH, headers=self.headers,
                timeout=aiohttp.ClientTimeout(total=self.probe_timeout_s),
            ) as r:
                r.raise_for_status()
                cards = json.loads(await r.read()).get("data", [])
            replica.models = frozenset(c.get("id") for c in cards)
            replica.adapters = tuple(c["id"] for c in cards if c.get("parent") == SERVED_MODEL_NAME)
            replica.last_error = None
        except (*REQUEST_ERRORS, ValueError, AttributeError, KeyError) as exc:
            replica.models, replica.adapters = frozenset(), ()
            replica.last_error = type(exc).__name__

    def _warn(self, message: str) -> None:
        if message != self._warned:  # one line per condition, not one per refresh
            logger.warning("%s", message)
            self._warned = message

    def serving(self, model: str) -> list[Replica]:
        now = time.monotonic()
        return [r for r in self.replicas.values() if r.healthy(now) and model in r.models]

    def pick(self, model: str, exclude: set[str]) -> Replica | None:
        candidates = [r for r in self.serving(model) if r.url not in exclude]
        if not candidates:
            return None
        fewest = min(r.in_flight for r in candidates)
        return random.choice([r for r in candidates if r.in_flight == fewest])

    def eject(self, replica: Replica, reason: str) -> None:
        """Skip `replica` for a back-off. Failures of requests already in flight when it
        went down arrive together: they count once, not once each."""
        if time.monotonic() < replica.ejected_until:
            return
        replica.failures += 1
        back_off = min(self.eject_s * 2 ** (replica.failures - 1), MAX_EJECT_S)
        replica.ejected_until = time.monotonic() + back_off
        replica.last_error = reason
        logger.warning("inference replica ejected", extra={
            "replica": replica.url, "reason": reason, "back_off_s": back_off})

    def succeeded(self, replica: Replica) -> None:
        replica.failures = 0

    def forget(self, replica: Replica, model: str) -> None:
        """The replica said it does not serve `model` (unloaded since the last probe)."""
        replica.models = replica.models - {model}


def split_urls(value: str) -> list[str]:
    """`url1,url2` → URLs; each must be http(s)://host:port."""
    urls = [u.strip().rstrip("/") for u in value.split(",") if u.strip()]
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
    return urls
