"""What the gateway does at the network edge besides its API.

- `Edge`, on every answer: the request id (`x-request-id`, into logs too); over HTTPS,
  HSTS, so a chat page once opened over TLS is never fetched in clear on the ward
  network again; without a Content-Security-Policy of its own (the chat page's is in
  `routes/ui.py`), `frame-ancestors 'none'`, so no page of the gateway — /docs, an
  error page — can be framed by another site (clickjacking); and the request counted
  and timed in the gateway's metrics.
- `metrics_server`: /metrics on a plain-HTTP port of its own (prometheus_client's
  threaded exporter over the app's registry), so the API port, which a load balancer
  publishes, does not serve it; the NetworkPolicy opens that port to Prometheus only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from medgo_common.observability import request_id, request_id_var
from prometheus_client import CollectorRegistry, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medgo_gateway.metrics import GatewayMetrics

HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")  # one year
DENY_FRAMING = (b"content-security-policy", b"frame-ancestors 'none'")


class Edge:
    """The gateway's one pure ASGI middleware: request id, security headers, metrics.

    One send wrapper instead of three (four over TLS): every chunk of a streamed answer
    passes through each wrapper, and the four middlewares before it, the body limit
    included, cost ~18 µs per chunk together (docs/benchmarks.md). Only the start
    message is read or changed: streams stay streams, no text is seen.
    """

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, hsts: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.always = [HSTS] if hsts else []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = request_id_var.set(rid)
        start = time.perf_counter()
        status, checkpoint = "500", "none"

        async def send_at_edge(message: Message) -> None:
            nonlocal status, checkpoint
            if message["type"] == "http.response.start":
                status = str(message["status"])
                headers = list(message.get("headers", ()))
                own_csp = False
                for key, value in headers:
                    if key == b"x-medgo-checkpoint":
                        checkpoint = value.decode("latin-1")
                    elif key.lower() == DENY_FRAMING[0]:
                        own_csp = True  # the chat page's CSP says frame-ancestors itself
                headers.append((b"x-request-id", rid.encode("latin-1")))
                if not own_csp:
                    headers.append(DENY_FRAMING)
                headers.extend(self.always)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_at_edge)
        finally:
            request_id_var.reset(token)
            self.metrics.answered(scope, status, checkpoint, time.perf_counter() - start)


@contextmanager
def metrics_server(host: str, port: int, registry: CollectorRegistry) -> Iterator[None]:
    """Serve `registry` at http://host:port/metrics for the duration of the block."""
    server, thread = start_http_server(port, addr=host, registry=registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
