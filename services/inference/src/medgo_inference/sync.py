"""The adapter sync loop: watch the serving manifest, make vLLM's loaded LoRAs match it.

Each poll (`MEDGO_INFERENCE_MANIFEST_POLL_S`, 1 s) reads the manifest and compares its
content hash with the last one applied. Hashing the content, not checking the mtime,
catches every way the file changes: `promote`'s atomic rename locally, and in
Kubernetes the ConfigMap volume's update, which swaps a `..data` symlink to a new
directory and leaves the mtime of `serving.json` itself unchanged.

A changed manifest is applied in this order, so no request ever meets a missing adapter:

1. validate the whole manifest (`adapters.desired_adapters`); a bad one is rejected,
   nothing changes, the error is logged once, counted and shown in `/status`;
2. load the new adapters (`POST /v1/load_lora_adapter`); if one fails, the ones this
   round loaded are unloaded again, so the replica keeps exactly its old set (never
   half-served), and the manifest is retried after `RETRY_FAILED_S`;
3. the gateways switch on their own: they read the same manifest;
4. after `unload_grace_s` (longer than a gateway takes to notice), unload the adapters
   the manifest dropped (`POST /v1/unload_lora_adapter`). In-flight generations on an
   unloaded adapter finish: vLLM only forgets the name.

A different `base_model` cannot be applied by loading adapters: the loop hands it to
its `on_base_change` callback (the supervisor restarts vLLM on the new base, or answers
why it cannot, and the old base keeps serving).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from medgo_common.schemas.serving import SERVED_MODEL_NAME, ServingManifest, read_manifest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from pydantic import ValidationError

from medgo_inference.adapters import (
    AdapterSpec,
    ManifestRejected,
    desired_adapters,
    manifest_base,
    plan_sync,
)

logger = logging.getLogger("medgo.inference.sync")
RETRY_FAILED_S = 30.0


class SyncMetrics:
    """What Prometheus scrapes from the launcher's status port."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.syncs = Counter(
            "medgo_inference_adapter_sync", "Manifest changes handled, by outcome "
            "(applied, rejected, load_failed, base_restart)", ["outcome"], registry=registry,
        )
        self.in_sync = Gauge(
            "medgo_inference_manifest_in_sync",
            "1 while vLLM serves exactly the manifest's adapters", registry=registry,
        )
        self.loaded = Gauge(
            "medgo_inference_adapter_loaded", "1 per adapter vLLM serves", ["adapter"],
            registry=registry,
        )
        self.load_seconds = Histogram(
            "medgo_inference_adapter_load_seconds", "Time of one runtime adapter load",
            registry=registry, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
        )


class LoadFailed(Exception):
    """vLLM refused to load an adapter; the message is one line."""


class VllmAdapters:
    """vLLM's runtime LoRA endpoints (enabled by VLLM_ALLOW_RUNTIME_LORA_UPDATING)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, api_key: str | None) -> None:
        self._client = client
        self._url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}

    async def loaded(self) -> dict[str, str]:
        """Adapter name → directory, as `/v1/models` lists them (raises httpx errors)."""
        r = await self._client.get(f"{self._url}/v1/models", headers=self._headers)
        r.raise_for_status()
        return {
            card["id"]: card.get("root", "")
            for card in r.json().get("data", [])
            if card.get("parent") == SERVED_MODEL_NAME
        }

    async def load(self, spec: AdapterSpec, *, in_place: bool = False) -> None:
        body = {"lora_name": spec.name, "lora_path": spec.path, "load_inplace": in_place}
        await self._post("load", body, spec.name)

    async def unload(self, name: str) -> None:
        await self._post("unload", {"lora_name": name}, name)

    async def _post(self, verb: str, body: dict[str, Any], name: str) -> None:
        try:
            r = await self._client.post(
                f"{self._url}/v1/{verb}_lora_adapter", json=body, headers=self._headers
            )
        except httpx.HTTPError as exc:
            raise LoadFailed(f"{verb} of adapter {name!r}: vLLM did not answer "
                             f"({type(exc).__name__})") from None
        if r.status_code != 200:
            raise LoadFailed(f"{verb} of adapter {name!r}: vLLM answered {r.status_code} "
                             f"{r.text[:300]}")


class AdapterSync:
    """One replica's loop; `status()` is the readiness detail served on the status port."""

    def __init__(
        self,
        *,
        manifest_path: Path,
        vllm: VllmAdapters,
        served_base: Path,
        max_lora_rank: int,
        metrics: SyncMetrics,
        unload_grace_s: float,
        on_base_change: Callable[[ServingManifest], Awaitable[str | None]],
    ) -> None:
        self.manifest_path = manifest_path
        self.vllm = vllm
        self.served_base = served_base
        self.max_lora_rank = max_lora_rank
        self.metrics = metrics
        self.unload_grace_s = unload_grace_s
        self.on_base_change = on_base_change
        self._applied: str | None = None  # hash of the manifest vLLM serves
        self._seen: str | None = None  # hash of the manifest last read
        self._failed: tuple[str, float] | None = None  # (hash, when) of a failed apply
        self._drop: tuple[float, frozenset[str]] | None = None  # pending unloads
        self._desired: frozenset[str] = frozenset()
        self._loaded: tuple[str, ...] = ()
        self._error: str | None = None
        self._state = "starting"

    def status(self) -> dict[str, Any]:
        return {
            "state": self._state,
            "manifest": str(self.manifest_path),
            "manifest_hash": self._seen,
            "applied_hash": self._applied,
            "in_sync": self._seen is not None and self._seen == self._applied,
            "loaded": list(self._loaded),
            "error": self._error,
        }

    async def run(self, poll_s: float) -> None:
        """Poll until cancelled, or until a base change was accepted (then return)."""
        while not await self.poll_once():
            await asyncio.sleep(poll_s)

    async def poll_once(self) -> bool:
        """One poll; True when the base changed and the supervisor takes over."""
        try:
            digest, manifest = read_manifest(self.manifest_path)
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            self._reject(None, f"serving manifest {self.manifest_path} is unreadable or "
                         f"invalid ({_first_error(exc)}); keeping the loaded adapters")
            return False
        self._seen = digest
        try:
            loaded = await self.vllm.loaded()
        except httpx.HTTPError:
            self._state = "waiting_for_vllm"
            return False
        self._loaded = tuple(loaded)
        for name in loaded:
            self.metrics.loaded.labels(name).set(1)
        await self._unload_dropped(loaded)
        if digest == self._applied:  # also: back to the served manifest after a bad one
            self._error, self._state = None, "in_sync"
            self.metrics.in_sync.set(1)
            return False
        if self._recently_failed(digest):
            return False
        if manifest_base(manifest, self.manifest_path).resolve() != self.served_base.resolve():
            refusal = await self.on_base_change(manifest)
            if refusal is None:
                self.metrics.syncs.labels("base_restart").inc()
                return True
            self._reject(digest, refusal)
            return False
        try:
            desired = desired_adapters(
                manifest, self.manifest_path, self.served_base, self.max_lora_rank
            )
        except ManifestRejected as exc:
            self._reject(digest, f"serving manifest rejected: {exc}; keeping the loaded "
                         "adapters")
            return False
        await self._apply(digest, desired, loaded)
        return False

    async def _apply(
        self, digest: str, desired: tuple[AdapterSpec, ...], loaded: dict[str, str]
    ) -> None:
        plan = plan_sync(desired, loaded)
        done: list[str] = []
        try:
            for spec in plan.load:
                with self.metrics.load_seconds.time():
                    await self.vllm.load(spec)
                done.append(spec.name)
            for spec in plan.reload:
                await self.vllm.load(spec, in_place=True)
        except LoadFailed as exc:
            for name in done:  # back to the old set: never half-served
                try:
                    await self.vllm.unload(name)
                except LoadFailed:
                    logger.exception("could not unload %s after a failed load", name)
            self._failed = (digest, time.monotonic())
            self.metrics.syncs.labels("load_failed").inc()
            self._fail("load_failed", f"{exc}; keeping the loaded adapters, retrying in "
                       f"{RETRY_FAILED_S:.0f} s")
            return
        self._desired = frozenset(s.name for s in desired)
        if plan.unload:
            self._drop = (time.monotonic() + self.unload_grace_s, frozenset(plan.unload))
        self._applied, self._failed, self._error, self._state = digest, None, None, "in_sync"
        self._loaded = tuple(dict.fromkeys([*loaded, *done]))
        for name in done:
            self.metrics.loaded.labels(name).set(1)
        self.metrics.in_sync.set(1)
        self.metrics.syncs.labels("applied").inc()
        logger.info("serving manifest applied", extra={
            "manifest_hash": digest, "loaded": list(done),
            "reloaded": [s.name for s in plan.reload], "to_unload": list(plan.unload),
        })  # fmt: skip

    async def _unload_dropped(self, loaded: dict[str, str]) -> None:
        if self._drop is None or time.monotonic() < self._drop[0]:
            return
        names = [n for n in self._drop[1] if n in loaded and n not in self._desired]
        self._drop = None
        for name in names:
            try:
                await self.vllm.unload(name)
            except LoadFailed as exc:
                logger.warning("%s", exc)
                continue
            self.metrics.loaded.remove(name)
            logger.info("adapter unloaded", extra={"adapter": name})
        self._loaded = tuple(n for n in loaded if n not in names)

    def _recently_failed(self, digest: str) -> bool:
        if self._failed is None or self._failed[0] != digest:
            return False
        return time.monotonic() - self._failed[1] < RETRY_FAILED_S

    def _reject(self, digest: str | None, message: str) -> None:
        if digest is not None:  # never retried: the file must change first
            self._failed = (digest, float("inf"))
        if message != self._error:
            self.metrics.syncs.labels("rejected").inc()
        self._fail("rejected", message)

    def _fail(self, state: str, message: str) -> None:
        if message != self._error:
            logger.error("%s", message)
        self._error, self._state = message, state
        self.metrics.in_sync.set(0)


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
