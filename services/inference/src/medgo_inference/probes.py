"""MedGo's probe paths on vLLM's own server, loaded into it with `--middleware`.

Every MedGo service answers `/healthz` (liveness: the process is alive) and `/readyz`
(readiness), so deploy/ and the local stack probe them the same way. vLLM is our
inference server and has `/health` (engine check) and `/metrics` already; this pure
ASGI middleware adds the two names without a server of our own and without touching
any other request (bodies pass through unbuffered, so streaming is unaffected).
"""

from __future__ import annotations

from typing import Any

HEALTH_BODY = b'{"status":"ok"}'


class ProbeAliasMiddleware:
    """`/healthz` answers at once; `/readyz` becomes vLLM's `/health` (engine alive).

    vLLM starts serving HTTP only after the model is loaded, so an answering `/health`
    means "model loaded and engine responsive": exactly readiness. Liveness must not
    depend on the engine, or a busy engine would get the pod restarted.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path == "/healthz":
            await send({
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            })
            await send({"type": "http.response.body", "body": HEALTH_BODY})
            return
        if path == "/readyz":
            scope = {**scope, "path": "/health", "raw_path": b"/health"}
        await self.app(scope, receive, send)
