"""The only code that talks to inference.

- Only allowlisted paths are ever requested (`ALLOWED_PATHS`): vLLM also serves
  /tokenize, /invocations, LoRA loading and more, and none of those is reachable
  through the gateway, whatever the client sends. The inference API key
  (`MEDGO_GATEWAY_INFERENCE_API_KEY`) is sent on every call when set, and so is the
  W3C `traceparent` of the request's span when tracing is on (vLLM continues the trace).
- Which adapter: `routing.ManifestRouting` (the serving manifest: stable adapter, the
  canary adapter and its weight, sticky per conversation). That adapter name is the
  checkpoint id (`x-medgo-checkpoint`).
- Which replica: `replicas.ReplicaPool` (discovered, probed, fewest in flight, failing
  ones ejected). A request that fails before any byte of the answer came back
  (refused connection, dropped connection, 5xx, adapter just unloaded) is retried once
  on another replica; a read timeout is not (it would double a long wait).
- A base-model change runs as a second pool (`MEDGO_GATEWAY_CANARY_URL`, its own
  Deployment) that takes `canary_weight` of the conversations, from the settings that
  every gateway replica shares; it serves whatever adapter it lists first.
- When no replica serves the stable adapter, requests get 503 with Retry-After; the
  gateway stays ready while one does — never a readiness cascade.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import orjson
from medgo_common.errors import MedgoError
from medgo_common.schemas.serving import SERVED_MODEL_NAME
from medgo_common.tracing import inject_traceparent

from medgo_gateway.replicas import REQUEST_ERRORS, Replica, ReplicaPool
from medgo_gateway.routing import ManifestRouting, share

CHAT_PATH = "/v1/chat/completions"
ALLOWED_PATHS = frozenset({CHAT_PATH})
RETRY_AFTER_S = "5"
KEEPALIVE_S = 4.0  # below uvicorn's (vLLM's) 5-s keep-alive: never reuse a closing socket
_JSON = {"Content-Type": "application/json"}
logger = logging.getLogger("medgo.gateway.upstream")

STABLE = "stable"
CANARY = "canary"


@dataclass(frozen=True)
class Target:
    """Where one request goes: the pool, the model name to send, the checkpoint id."""

    backend: str
    model: str
    checkpoint: str


STREAM_ERRORS = REQUEST_ERRORS  # what reading a stream raises when its replica fails


class UpstreamStream:
    """A streamed answer from one replica; its slot is held until `aclose()`."""

    def __init__(self, response: aiohttp.ClientResponse, pool: ReplicaPool,
                 replica: Replica) -> None:
        self._response, self._pool, self._replica = response, pool, replica
        self._closed = False

    def chunks(self) -> AsyncIterator[bytes]:
        """The answer's bytes as they arrive: aiohttp's own iterator, with no layer of
        ours around it (a layer per chunk costs CPU on every token). While iterating,
        catch `STREAM_ERRORS` and report them with `failed()`."""
        return self._response.content.iter_any()

    def failed(self, exc: BaseException) -> bool:
        """The replica died mid-answer: no new streams there. True if it timed out."""
        self._pool.eject(self._replica, type(exc).__name__)
        return isinstance(exc, TimeoutError)

    async def aclose(self) -> None:
        """Back to the pool when the answer was read to its end; otherwise the
        connection is closed, which makes vLLM abort the generation."""
        if self._closed:
            return
        self._closed = True
        self._replica.in_flight -= 1
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


def client_session(*, max_connections: int, connect_timeout_s: float,
                   read_timeout_s: float) -> aiohttp.ClientSession:
    """A pooled session to uvicorn-served peers: the inference replicas, or feedback
    (created inside the running loop; idle connections closed before uvicorn's 5 s).

    `read_timeout_s` bounds each wait for bytes (a whole non-streamed answer, or the
    next chunk of a stream), as httpx's read timeout did.
    """
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=max_connections, limit_per_host=0,
                                       keepalive_timeout=KEEPALIVE_S),
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s,
                                      sock_read=read_timeout_s),
        skip_auto_headers=("User-Agent",),
    )


class Upstream:
    def __init__(
        self,
        *,
        client: aiohttp.ClientSession,
        pools: dict[str, ReplicaPool],
        routing: ManifestRouting,
        canary_weight: float,
        refresh_s: float,
        manifest_poll_s: float,
    ) -> None:
        self._client = client
        self.pools = pools
        self.routing = routing
        self.canary_weight = canary_weight  # the base-change pool's share
        self._refresh_s = refresh_s
        self._manifest_poll_s = manifest_poll_s
        self._tasks: list[asyncio.Task] = []
        self._headers = next(iter(pools.values())).headers

    # -- background: discovery, probes, the manifest
    async def start(self) -> None:
        """First look at the replicas and the manifest, then keep both fresh."""
        self.routing.reload()
        await asyncio.gather(*(p.refresh() for p in self.pools.values()))
        self._tasks = [asyncio.create_task(self._refresh_loop())]
        if self.routing.path is not None:
            self._tasks.append(asyncio.create_task(self.routing.follow(self._manifest_poll_s)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _refresh_loop(self) -> None:
        while True:
            await asyncio.sleep(self._refresh_s)
            try:
                await asyncio.gather(*(p.refresh() for p in self.pools.values()))
            except Exception:  # a bug here must not stop discovery for good
                logger.exception("replica refresh failed")

    def request_headers(self) -> dict[str, str]:
        """The shared headers plus this request's `traceparent` (a fresh dict per call)."""
        return inject_traceparent(dict(self._headers))

    # -- routing
    def backend_for(self, conversation_key: str) -> str:
        """The base-change canary pool takes `canary_weight` of the conversations."""
        if CANARY in self.pools and share("base:" + conversation_key) < self.canary_weight:
            return CANARY
        return STABLE

    async def target(self, conversation_key: str) -> Target:
        backend = self.backend_for(conversation_key)
        choices = self.routing.choices(conversation_key) if backend == STABLE else []
        return self._served(backend, choices)

    def stable_target(self) -> Target:
        return self._served(STABLE, self.routing.stable_choices())

    def _served(self, backend: str, choices: list[str]) -> Target:
        pool = self.pools[backend]
        for model in choices or self._listed_default(pool):
            if pool.serving(model):
                return Target(backend=backend, model=model, checkpoint=model)
        raise MedgoError(
            503, f"no {backend} inference replica serves {', '.join(choices) or 'a model'} "
            "right now", code="upstream_unavailable", headers={"Retry-After": RETRY_AFTER_S},
        )

    @staticmethod
    def _listed_default(pool: ReplicaPool) -> list[str]:
        """No manifest, no configured adapter: the first adapter replicas list, else the base."""
        firsts = [r.adapters[0] for r in pool.replicas.values() if r.adapters]
        return list(dict.fromkeys([*firsts, SERVED_MODEL_NAME]))

    # -- requests (allowlisted)
    def _url(self, replica: Replica, path: str) -> str:
        if path not in ALLOWED_PATHS:
            raise MedgoError(404, "not found")
        return replica.url + path

    def _pick(self, target: Target, tried: set[str], last: MedgoError | None) -> Replica:
        replica = self.pools[target.backend].pick(target.model, tried)
        if replica is None:
            raise last or MedgoError(
                503, f"no {target.backend} inference replica serves {target.model!r} right now",
                code="upstream_unavailable", headers={"Retry-After": RETRY_AFTER_S},
            )
        tried.add(replica.url)
        return replica

    async def complete(self, target: Target, payload: dict) -> bytes:
        """A non-streamed chat completion: vLLM's JSON body, as bytes, unchanged."""
        pool, tried, last = self.pools[target.backend], set(), None
        body = _json_body(payload)  # encoded once for both attempts
        for _ in range(2):
            replica = self._pick(target, tried, last)
            replica.in_flight += 1
            try:
                async with self._client.post(self._url(replica, CHAT_PATH), data=body,
                                             headers=self.request_headers() | _JSON) as response:
                    status, content = response.status, await response.read()
            except REQUEST_ERRORS as exc:
                last = _ejected(pool, replica, exc)
                if _no_answer_yet(exc):
                    continue
                raise last from exc
            finally:
                replica.in_flight -= 1
            retry = self._failed(pool, replica, target, status)
            if retry is None:
                pool.succeeded(replica)
                return content
            last = _status_error(status, _error_message(content))
            if not retry:
                raise last
        raise last

    async def open_stream(self, target: Target, payload: dict) -> UpstreamStream:
        """Start a streamed completion; the caller iterates it and must `aclose()` it.

        Closing an unfinished answer closes its connection, which makes vLLM abort the
        generation: that is how a client's disconnect reaches the model.
        """
        pool, tried, last = self.pools[target.backend], set(), None
        body = _json_body(payload)  # encoded once for both attempts
        for _ in range(2):
            replica = self._pick(target, tried, last)
            try:
                response = await self._client.post(
                    self._url(replica, CHAT_PATH), data=body,
                    headers=self.request_headers() | _JSON,
                )
            except REQUEST_ERRORS as exc:
                last = _ejected(pool, replica, exc)
                if _no_answer_yet(exc):
                    continue
                raise last from exc
            retry = self._failed(pool, replica, target, response.status)
            if retry is None:
                pool.succeeded(replica)
                replica.in_flight += 1
                return UpstreamStream(response, pool, replica)
            try:
                last = _status_error(response.status, _error_message(await response.read()))
            except REQUEST_ERRORS:
                last = _status_error(response.status, None)
            finally:
                response.close()
            if not retry:
                raise last
        raise last

    @staticmethod
    def _failed(pool: ReplicaPool, replica: Replica, target: Target, status: int) -> bool | None:
        """None: success. True: retry elsewhere (5xx; the adapter is gone from this
        replica). False: the request itself is wrong (4xx), do not retry."""
        if status == 200:
            return None
        if status >= 500:
            pool.eject(replica, f"HTTP {status}")
            return True
        if status == 404:  # unloaded since the last probe: stop sending it there
            pool.forget(replica, target.model)
            return True
        return False

    def readiness(self) -> str | None:
        """None while a replica serves the stable adapter, or (during a base-model
        change) while the base canary takes traffic and serves; the adapter canary never
        counts. So losing one pool's replicas never takes every gateway pod out."""
        try:
            self.stable_target()
        except MedgoError as exc:
            if CANARY in self.pools and self.canary_weight > 0:
                with contextlib.suppress(MedgoError):
                    self._served(CANARY, [])
                    return None
            return exc.message
        return None

    def describe(self) -> dict:
        now = time.monotonic()
        return {
            "manifest": self.routing.describe(),
            "pools": {
                name: [r.describe(now) for r in pool.replicas.values()]
                for name, pool in self.pools.items()
            },
            "base_canary_weight": self.canary_weight if CANARY in self.pools else None,
        }


def _json_body(payload: dict) -> bytes:
    return orjson.dumps(payload)  # compact UTF-8, as vLLM reads it


def _no_answer_yet(exc: aiohttp.ClientError | TimeoutError) -> bool:
    """Failed before any byte of an answer: safe to send to another replica. A read
    timeout is not (the model may be working on it: retrying would double the wait)."""
    if isinstance(exc, TimeoutError):
        return isinstance(exc, aiohttp.ConnectionTimeoutError)
    return isinstance(exc, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)


def _transport_error(exc: aiohttp.ClientError | TimeoutError) -> MedgoError:
    if isinstance(exc, TimeoutError):
        return MedgoError(504, "the inference backend timed out", code="upstream_timeout")
    return MedgoError(
        503, "the inference backend is unavailable", code="upstream_unavailable",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _ejected(pool: ReplicaPool, replica: Replica,
             exc: aiohttp.ClientError | TimeoutError) -> MedgoError:
    """A replica that failed at the transport level: out for its back-off; the error to
    raise unless the request can go to another replica."""
    pool.eject(replica, type(exc).__name__)
    return _transport_error(exc)


def _error_message(content: bytes) -> str | None:
    try:
        body = json.loads(content)
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
