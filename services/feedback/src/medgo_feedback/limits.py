"""Request size limit as pure ASGI middleware: oversized bodies get 413, early.

A declared `Content-Length` over the limit is refused before a byte is read; a chunked
body is counted as it arrives and refused once it crosses the limit. The middleware
never buffers the body, so it costs nothing for normal requests.
"""

from __future__ import annotations

from medgo_common.errors import error_response


class BodyLimitMiddleware:
    def __init__(self, app, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, scope, receive, send) -> None:
        response = error_response(
            413, f"request body larger than {self.max_bytes} bytes", code="payload_too_large"
        )
        await response(scope, receive, send)

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await self._refuse(scope, receive, send)
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


class _BodyTooLargeError(Exception):
    """Stops the app's body read; the middleware then answers 413 itself."""
