"""The only code that talks to inference.

- Only allowlisted paths are ever requested (`ALLOWED_PATHS`): vLLM also serves
  /tokenize, /invocations, LoRA loading and more, and none of those is reachable
  through the gateway, whatever the client sends.
- One pooled `httpx.AsyncClient` (owned by the app's lifespan), explicit timeouts;
  a timeout is a 504, an unreachable backend a 503, a backend failure a 502.
- Stable/canary routing: a conversation goes to the canary with probability
  `canary_weight`, decided by a hash of its key, so every turn of one conversation
  sees the same checkpoint.
- Model discovery: the backend's `GET /v1/models` says what it serves; the public
  name `medgo` maps to the configured adapter, else the first adapter (the serving
  manifest's default), else the base. That adapter name is the checkpoint id.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import httpx
from medgo_common.errors import MedgoError
from medgo_common.schemas.serving import SERVED_MODEL_NAME

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
ALLOWED_PATHS = frozenset({CHAT_PATH, MODELS_PATH})

STABLE = "stable"
CANARY = "canary"


@dataclass(frozen=True)
class Target:
    """Where one request goes: backend, the model name to send, the checkpoint id."""

    backend: str
    url: str
    model: str
    checkpoint: str


class Upstream:
    def __init__(
        self,
        *,
        client: httpx.AsyncClient,
        stable_url: str,
        canary_url: str | None,
        canary_weight: float,
        adapter: str | None,
        models_cache_s: float,
        probe_timeout_s: float,
    ) -> None:
        self._client = client
        self.urls = {STABLE: stable_url, **({CANARY: canary_url} if canary_url else {})}
        self.canary_weight = canary_weight
        self._adapter = adapter
        self._models_cache_s = models_cache_s
        # Listing models is instant on a healthy backend; a generation may take minutes.
        self._probe_timeout_s = probe_timeout_s
        self._models: dict[str, tuple[float, list[dict]]] = {}

    # -- routing
    def set_canary_weight(self, weight: float) -> None:
        if weight > 0 and CANARY not in self.urls:
            raise MedgoError(409, "no canary backend is configured", code="no_canary")
        self.canary_weight = weight

    def backend_for(self, conversation_key: str) -> str:
        if CANARY not in self.urls or self.canary_weight <= 0:
            return STABLE
        digest = hashlib.sha256(conversation_key.encode("utf-8")).digest()
        return CANARY if int.from_bytes(digest[:8]) / 2**64 < self.canary_weight else STABLE

    async def target(self, conversation_key: str) -> Target:
        return await self.resolve(self.backend_for(conversation_key))

    async def resolve(self, backend: str) -> Target:
        """The model name to send to `backend`, found from what it serves."""
        url = self.urls[backend]
        cards = await self.models(backend)
        ids = [c.get("id") for c in cards]
        if self._adapter:
            if self._adapter not in ids:
                raise MedgoError(
                    503, f"the {backend} backend does not serve adapter {self._adapter!r}",
                    code="adapter_not_served", headers={"Retry-After": "10"},
                )
            model = self._adapter
        else:
            adapters = [c["id"] for c in cards if c.get("parent") == SERVED_MODEL_NAME]
            model = adapters[0] if adapters else SERVED_MODEL_NAME
        return Target(backend=backend, url=url, model=model, checkpoint=model)

    # -- requests (allowlisted)
    def _url(self, backend_url: str, path: str) -> str:
        if path not in ALLOWED_PATHS:
            raise MedgoError(404, "not found")
        return backend_url + path

    async def models(self, backend: str) -> list[dict]:
        """The backend's model cards, cached for `models_cache_s`."""
        now = time.monotonic()
        cached = self._models.get(backend)
        if cached and cached[0] > now:
            return cached[1]
        try:
            response = await self._client.get(
                self._url(self.urls[backend], MODELS_PATH), timeout=self._probe_timeout_s
            )
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if response.status_code != 200:
            raise MedgoError(502, "inference backend failed to list its models")
        cards = response.json().get("data", [])
        self._models[backend] = (now + self._models_cache_s, cards)
        return cards

    async def complete(self, target: Target, payload: dict) -> bytes:
        """A non-streamed chat completion: vLLM's JSON body, as bytes, unchanged."""
        try:
            response = await self._client.post(self._url(target.url, CHAT_PATH), json=payload)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if response.status_code != 200:
            raise _status_error(response.status_code, _error_message(response))
        return response.content

    async def open_stream(self, target: Target, payload: dict) -> httpx.Response:
        """Start a streamed completion; the caller iterates it and must `aclose()` it.

        Closing the response closes its connection, which makes vLLM abort the
        generation: that is how a client's disconnect reaches the model.
        """
        request = self._client.build_request("POST", self._url(target.url, CHAT_PATH), json=payload)
        try:
            response = await self._client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise _transport_error(exc) from exc
        if response.status_code != 200:
            try:
                await response.aread()
                message = _error_message(response)
            except httpx.HTTPError:
                message = None
            finally:
                await response.aclose()
            raise _status_error(response.status_code, message)
        return response

    async def readiness(self) -> str | None:
        """None when every backend in use lists its models, else why not."""
        for backend in self.urls:
            if backend == CANARY and self.canary_weight <= 0:
                continue
            try:
                self._models.pop(backend, None)
                await self.models(backend)
            except MedgoError as exc:
                return f"{backend} inference backend: {exc.message}"
        return None


def _transport_error(exc: httpx.HTTPError) -> MedgoError:
    if isinstance(exc, httpx.TimeoutException) and not isinstance(exc, httpx.PoolTimeout):
        return MedgoError(504, "the inference backend timed out", code="upstream_timeout")
    return MedgoError(
        503, "the inference backend is unavailable", code="upstream_unavailable",
        headers={"Retry-After": "5"},
    )


def _error_message(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500]
    return None


def _status_error(status: int, message: str | None) -> MedgoError:
    if 400 <= status < 500 and status not in (401, 403, 404):
        return MedgoError(status, message or "the inference backend refused the request")
    return MedgoError(502, "the inference backend failed", code="upstream_error")
