"""The request-body limit every service mounts: pure ASGI, counted while streaming.

A declared `Content-Length` over the limit (or one that is not a number) is refused
before a byte is read, and one within it passes untouched (the server reads no more
body than declared); a chunked body is counted as it arrives and refused once it
crosses the limit. The body is never buffered here, so a normal request costs nothing
and a streamed upload is not held in memory twice. One answer everywhere: 413 with
code `body_too_large` in the OpenAI error envelope.
"""

from __future__ import annotations

from collections.abc import Callable

from medgo_common.errors import error_response

CODE = "body_too_large"


class _BodyTooLargeError(Exception):
    """Stops the app's body read; the middleware then answers 413 itself."""


class BodyLimitMiddleware:
    """413 for bodies over `max_bytes`; `on_reject(CODE)` lets a service count them."""

    def __init__(self, app, *, max_bytes: int,
                 on_reject: Callable[[str], None] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._on_reject = on_reject or (lambda _code: None)

    async def _refuse(self, scope, receive, send) -> None:
        self._on_reject(CODE)
        response = error_response(
            413, f"request body exceeds {self.max_bytes} bytes", code=CODE
        )
        await response(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                if not value.isdigit() or int(value) > self.max_bytes:
                    await self._refuse(scope, receive, send)
                    return
                # The server reads exactly Content-Length bytes of body (what follows is
                # the next request), so this body fits: nothing to count, nothing to
                # wrap — no layer of ours on every chunk of a streamed answer.
                await self.app(scope, receive, send)
                return
        received = 0
        too_large = False

        async def counting_receive():
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLargeError
            return message

        async def guarded_send(message) -> None:
            # Once the body is over the limit, whatever the app answers is replaced.
            if not too_large:
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large:
            await self._refuse(scope, receive, send)
