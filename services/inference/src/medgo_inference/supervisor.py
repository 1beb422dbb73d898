"""The launcher as vLLM's supervisor: vLLM runs as a child, the adapter sync runs here.

Where the sync loop runs — decided: **in the launcher process, which supervises vLLM as
its child**, rather than as a sidecar command. Why:

- One process per replica, everywhere: `medgo-inference` is still the only thing to
  start (scripts/up.sh, compose, the Kubernetes container, the test fixtures), so no
  deployment can forget the sidecar and silently stop following the manifest.
- The loop shares the replica's lifetime: when vLLM dies the launcher exits with its
  code (the orchestrator restarts the pair), and a base-model change — which adapters
  cannot express — is applied by restarting the child on the new base, something a
  sidecar cannot do.
- The cost is one Python process idling beside vLLM; signals are forwarded (SIGTERM /
  SIGINT → vLLM's own graceful shutdown), so the orchestrator's stop still reaches it.

With no manifest to follow (explicit `MEDGO_INFERENCE_BASE_MODEL`, or
`MEDGO_INFERENCE_WATCH_MANIFEST=false`) the launcher still execs vLLM (`launcher.py`).

The launcher also serves, on `MEDGO_INFERENCE_STATUS_PORT`, `/status` (the sync state
as JSON: the readiness detail `medgo-inference status` prints) and `/metrics`
(Prometheus). A failed adapter load never makes the replica unready: its old set keeps
serving, so readiness stays vLLM's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from medgo_common.schemas.serving import ServingManifest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from medgo_inference.launcher import build_argv, build_env
from medgo_inference.resolve import ServePlan
from medgo_inference.settings import InferenceSettings
from medgo_inference.sync import AdapterSync, SyncMetrics, VllmAdapters

logger = logging.getLogger("medgo.inference.supervisor")
# Runtime loads and /v1/models are fast; a stuck server must not stall the loop forever.
VLLM_CALL_TIMEOUT_S = 60.0


def serve_status(
    host: str, port: int, status: Callable[[], dict[str, Any]], registry: CollectorRegistry
) -> ThreadingHTTPServer:
    """`/status` (JSON) and `/metrics` on a daemon thread; returns the server to close."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/status":
                body, kind = json.dumps(status()).encode(), "application/json"
            elif self.path == "/metrics":
                body, kind = generate_latest(registry), CONTENT_TYPE_LATEST
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:  # probes every few seconds: no log
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="status").start()
    return server


class Supervisor:
    """Start vLLM for a plan, follow the manifest, restart on a base change, exit with vLLM."""

    def __init__(
        self,
        settings: InferenceSettings,
        plan: ServePlan,
        env: dict[str, str],
        replan: Callable[[], ServePlan],
        vllm_url: str,
    ) -> None:
        self.settings = settings
        self.plan = plan
        self.base_env = env
        self.replan = replan
        self.vllm_url = vllm_url
        self.metrics = SyncMetrics(CollectorRegistry())
        self._proc: asyncio.subprocess.Process | None = None
        self._next: ServePlan | None = None
        self._sync: AdapterSync | None = None

    def status(self) -> dict[str, Any]:
        sync = self._sync.status() if self._sync else {"state": "starting"}
        return {**sync, "base_model": str(self.plan.base_model)}

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._forward, sig)
        server = None
        if self.settings.status_port:
            host = self.settings.host
            server = serve_status(host, self.settings.status_port, self.status,
                                  self.metrics.registry)
        api_key = self.settings.api_key.get_secret_value() if self.settings.api_key else None
        try:
            async with httpx.AsyncClient(timeout=VLLM_CALL_TIMEOUT_S) as client:
                vllm = VllmAdapters(client, self.vllm_url, api_key)
                while True:
                    code = await self._serve_once(vllm)
                    if self._next is None:
                        return code
                    self.plan, self._next = self._next, None
        finally:
            if server is not None:
                server.shutdown()

    async def _serve_once(self, vllm: VllmAdapters) -> int:
        argv = build_argv(self.plan, self.settings)
        env = build_env(self.plan, self.settings, self.base_env)
        self._proc = await asyncio.create_subprocess_exec(*argv, env=env)
        self._sync = AdapterSync(
            manifest_path=self.settings.manifest,
            vllm=vllm,
            served_base=self.plan.base_model,
            max_lora_rank=self.settings.max_lora_rank,
            metrics=self.metrics,
            unload_grace_s=self.settings.unload_grace_s,
            on_base_change=self._base_changed,
        )
        sync = asyncio.create_task(self._sync.run(self.settings.manifest_poll_s))
        try:
            return await self._proc.wait()
        finally:
            sync.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sync

    async def _base_changed(self, manifest: ServingManifest) -> str | None:
        """Restart vLLM on the new base if it resolves to a servable plan (None), else
        say why not and keep serving the old base."""
        try:
            plan = self.replan()
        except Exception as exc:  # any start-up error: keep serving the old base
            return f"new base model refused, keeping {self.plan.base_model}: {exc}"
        logger.warning("base model changed: restarting vLLM", extra={
            "old": str(self.plan.base_model), "new": str(plan.base_model),
            "checkpoint": manifest.checkpoint_id,
        })  # fmt: skip
        self._next = plan
        self._signal(signal.SIGTERM)
        return None

    def _forward(self, sig: signal.Signals) -> None:
        """An operator's stop: pass it to vLLM and end the loop, even mid-restart."""
        self._next = None
        self._signal(sig)

    def _signal(self, sig: signal.Signals) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.send_signal(sig)
