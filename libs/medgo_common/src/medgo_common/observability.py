"""Health, readiness, metrics and JSON logs, the same way in every service.

- `/healthz` answers while the process is alive (liveness; never checks a dependency,
  or a database blip would restart every pod).
- `/readyz` runs the service's own readiness check (model loaded, DB reachable).
- `/metrics` serves the app's own Prometheus registry (one per app, so tests that
  build several apps do not share counters).
- `RequestIdMiddleware` is pure ASGI: it touches headers only, so streamed responses
  stay streamed and no body (hence no PHI) passes through it. (The gateway does the
  same in its one edge middleware, with `request_id()`.)
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

REQUEST_ID_HEADER = "x-request-id"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "medgo_request_id", default=None
)

# A readiness check returns None when ready, or a short reason why not.
ReadinessCheck = Callable[[], Awaitable[str | None]]

_STD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra=` fields are kept, the request id is added."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        rid = request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            entry["error_type"] = record.exc_info[0].__name__
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure_logging(service: str, level: str = "INFO") -> None:
    """JSON logs on stderr for `medgo.*` loggers and uvicorn's.

    Exception tracebacks are not written: their frames may hold request text (PHI).
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    for name in ("medgo", "uvicorn", "uvicorn.error", "uvicorn.access"):
        log = logging.getLogger(name)
        log.handlers[:] = [handler]
        log.setLevel(level.upper())
        log.propagate = False


def request_id(scope) -> str:
    """The request's `x-request-id` (printable, ≤ 128 characters), else a new one."""
    for key, value in scope.get("headers", ()):
        if key == b"x-request-id":
            candidate = value.decode("latin-1")[:128]
            if candidate.isprintable():
                return candidate
            break
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Propagates `x-request-id` (or mints one) into logs and the response headers."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = request_id_var.set(rid)

        async def send_with_id(message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                headers.append((b"x-request-id", rid.encode("latin-1")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def health_router(
    registry: CollectorRegistry, readiness: ReadinessCheck, *, metrics: bool = True
) -> APIRouter:
    """`/healthz`, `/readyz` and `/metrics`; unauthenticated by design (probes, scrapers).

    `metrics=False` leaves `/metrics` out, for an app that serves it on a port of its own.
    """
    router = APIRouter(tags=["health"])

    @router.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        reason = await readiness()
        if reason is None:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "not ready", "reason": reason}, status_code=503)

    if metrics:

        @router.get("/metrics", response_class=PlainTextResponse)  # documents text/plain
        async def metrics_text() -> Response:
            return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
