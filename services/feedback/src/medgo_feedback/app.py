"""The feedback service's app factory: one engine, the routers, the error mapping.

Database failures become the shared error envelope here, once, instead of in every
route: an unreachable or locked database is 503 with Retry-After (the request's
transaction was rolled back, so nothing is half-written and the caller may retry);
a uniqueness race is 409.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from medgo_common.bodylimit import BodyLimitMiddleware
from medgo_common.errors import error_response, install_error_handlers
from medgo_common.observability import RequestIdMiddleware, health_router
from medgo_common.phi.guarded import awarm_up
from medgo_common.service_auth import require_service_caller
from prometheus_client import CollectorRegistry
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from medgo_feedback.db import build_engine, build_sessionmaker, ping
from medgo_feedback.metrics import FeedbackMetrics
from medgo_feedback.retention import OldestRecord
from medgo_feedback.routes import api_router
from medgo_feedback.settings import FeedbackSettings
from medgo_feedback.store import IdempotencyConflictError, UnknownInteractionError

log = logging.getLogger(__name__)


def create_app(settings: FeedbackSettings) -> FastAPI:
    """Build the app; the schema must already be at head (`db.upgrade_to_head`)."""
    engine = build_engine(settings)
    factory = build_sessionmaker(engine)
    oldest = OldestRecord()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await awarm_up()  # the PHI check's name model, before the first request needs it
        refresher = asyncio.create_task(_refresh_oldest(oldest, factory, settings))
        yield
        refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await refresher
        engine.dispose()

    app = FastAPI(title="MedGo feedback", version="1", lifespan=lifespan)
    registry = CollectorRegistry()
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessionmaker = factory
    app.state.oldest_record = oldest
    app.state.metrics = FeedbackMetrics(registry, settings, oldest)

    install_error_handlers(app, validation_status=422)
    _install_store_errors(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)

    async def readiness() -> str | None:
        return await run_in_threadpool(ping, engine)

    app.include_router(health_router(registry, readiness))
    app.include_router(api_router, dependencies=[Depends(require_service_caller)])
    return app


async def _refresh_oldest(
    oldest: OldestRecord, factory: sessionmaker[Session], settings: FeedbackSettings
) -> None:
    """Re-read the oldest interaction for the retention gauge, off the event loop.

    A failed read keeps the previous time (the gauge's age keeps growing) and is logged
    by exception type only: the database's message could carry a URL.
    """
    while True:
        try:
            await run_in_threadpool(oldest.refresh, factory)
        except Exception as exc:  # any driver failure: keep the last value, say so
            log.warning("retention gauge: cannot read the oldest interaction (%s)",
                        type(exc).__name__)
        await asyncio.sleep(settings.retention_refresh_s)


def _install_store_errors(app: FastAPI) -> None:
    @app.exception_handler(UnknownInteractionError)
    async def _unknown(_: Request, exc: UnknownInteractionError) -> JSONResponse:
        return error_response(404, str(exc), code="interaction_not_found", param="interaction_id")

    @app.exception_handler(IdempotencyConflictError)
    async def _key_reused(_: Request, exc: IdempotencyConflictError) -> JSONResponse:
        return error_response(409, str(exc), code="idempotency_key_reused", param="idempotency_key")

    @app.exception_handler(sa_exc.IntegrityError)
    async def _race(request: Request, __: sa_exc.IntegrityError) -> JSONResponse:
        _count_write_error(request, "conflict")
        return error_response(409, "a concurrent write conflicted; retry", code="write_conflict")

    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        _count_write_error(request, "unavailable")
        return error_response(
            503,
            "the feedback database is unavailable; nothing was written, retry later",
            code="database_unavailable",
            headers={"Retry-After": "5"},
        )

    for error in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.add_exception_handler(error, _unavailable)


def _count_write_error(request: Request, reason: str) -> None:
    """Count database failures of writes (POST/PUT/PATCH/DELETE) for the alert
    MedgoFeedbackWriteErrors; a failed read (stats, exports) is the caller's 503 only."""
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        request.app.state.metrics.write_errors.labels(reason=reason).inc()
