"""One error envelope for every MedGo service: OpenAI's `{"error": {...}}`.

Clients (the OpenAI SDK, our chat page, ops scripts) parse one shape whatever the
service, and never see FastAPI's default `{"detail": ...}` or a stack trace. The
status code and the body's `type` always agree because both come from `ERROR_TYPES`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("medgo.errors")

ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    500: "internal_error",
    502: "upstream_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None = None
    code: str | int | None = None


class ErrorResponse(BaseModel):
    """OpenAI's error shape, as vLLM serves it."""

    error: ErrorDetail


class MedgoError(Exception):
    """Raise anywhere in a request to answer with the envelope and this status."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.headers = dict(headers or {})


def error_body(
    status: int, message: str, *, code: str | int | None = None, param: str | None = None
) -> dict:
    detail = ErrorDetail(
        message=message, type=ERROR_TYPES.get(status, "error"), param=param, code=code
    )
    return ErrorResponse(error=detail).model_dump()


def error_response(
    status: int,
    message: str,
    *,
    code: str | int | None = None,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        error_body(status, message, code=code, param=param),
        status_code=status,
        headers=dict(headers or {}),
    )


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    param = ".".join(loc) or None
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body",))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else err.get("msg", ""))
    return "; ".join(parts), param


def install_error_handlers(app: FastAPI, *, validation_status: int = 400) -> None:
    """Route every failure through the envelope.

    `validation_status` is 400 for OpenAI-compatible surfaces (as vLLM answers) and
    422 for our own REST APIs (feedback, trainer), where field errors are the norm.
    """

    @app.exception_handler(MedgoError)
    async def _medgo(_: Request, exc: MedgoError) -> JSONResponse:
        return error_response(
            exc.status, exc.message, code=exc.code, param=exc.param, headers=exc.headers
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else "request failed"
        return error_response(exc.status_code, message, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return error_response(validation_status, message, param=param, code="invalid_value")

    @app.exception_handler(Exception)
    async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
        # The exception text may contain request data (and so PHI): log the type only.
        logger.error(
            "unhandled error", extra={"path": request.url.path, "error_type": type(exc).__name__}
        )
        return error_response(500, "internal error; see the service logs for the request id")
