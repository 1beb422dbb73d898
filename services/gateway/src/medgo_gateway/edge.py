"""What the gateway does at the network edge besides its API.

- `StrictTransportSecurity`: over HTTPS every answer tells browsers to use HTTPS only
  (HSTS), so a chat page once opened over TLS is never fetched in clear on the ward
  network again. A pure ASGI middleware: it touches headers only, streams stay streams.
- `DenyFraming`: every answer without a Content-Security-Policy of its own (the chat
  page's is in `routes/ui.py`) gets `frame-ancestors 'none'`, so no page of the
  gateway — /docs, an error page — can be framed by another site (clickjacking).
- `metrics_server`: /metrics on a plain-HTTP port of its own (prometheus_client's
  threaded exporter over the app's registry), so the API port, which a load balancer
  publishes, does not serve it; the NetworkPolicy opens that port to Prometheus only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import CollectorRegistry, start_http_server
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = b"max-age=31536000; includeSubDomains"  # one year, the usual preload minimum


class _ResponseHeader:
    """A pure ASGI middleware adding one header to every HTTP answer's start message;
    with `unless_present`, only to answers that do not set that header themselves."""

    header: tuple[bytes, bytes]
    unless_present = False

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        name = self.header[0]

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if not (self.unless_present
                        and any(key.lower() == name for key, _ in headers)):
                    message = {**message, "headers": [*headers, self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)


class StrictTransportSecurity(_ResponseHeader):
    header = (b"strict-transport-security", HSTS)


class DenyFraming(_ResponseHeader):
    header = (b"content-security-policy", b"frame-ancestors 'none'")
    unless_present = True  # the chat page's own CSP says frame-ancestors itself


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
