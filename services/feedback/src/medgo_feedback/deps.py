"""Request dependencies as named types: a route's signature lists what it needs.

`CallerDep` is the service-to-service authentication (`medgo_common.service_auth`,
shared with the trainer's job API): a bearer token from `MEDGO_FEEDBACK_SERVICE_TOKENS`,
compared in constant time. Every `/v1` router is mounted behind it in `app.py`, so an
endpoint is closed unless deliberately opened; with no tokens configured, nobody gets in.
On top, each route names the one scope it needs (`dependencies=[scoped(...)]`, the
names in `scopes.py`), checked against `MEDGO_FEEDBACK_SERVICE_SCOPES`.

The dependencies that do no I/O are `async def` on purpose: FastAPI runs a plain
`def` dependency in the thread pool, and each such hop cost more CPU than the
rating's own SQL (see docs/benchmarks.md, "Feedback store").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.params import Depends as DependsParam
from medgo_common.service_auth import ServiceCallerDep as CallerDep
from medgo_common.service_auth import require_scope
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from medgo_feedback.metrics import FeedbackMetrics
from medgo_feedback.retention import OldestRecord
from medgo_feedback.settings import FeedbackSettings


async def get_settings(request: Request) -> FeedbackSettings:
    return request.app.state.settings


async def get_engine(request: Request) -> Engine:
    return request.app.state.engine


async def get_sessionmaker(request: Request) -> sessionmaker[Session]:
    return request.app.state.sessionmaker


async def get_metrics(request: Request) -> FeedbackMetrics:
    return request.app.state.metrics


async def get_oldest_record(request: Request) -> OldestRecord:
    return request.app.state.oldest_record


def get_session(
    factory: Annotated[sessionmaker[Session], Depends(get_sessionmaker)],
) -> Iterator[Session]:
    """One session per request; the route commits, anything else rolls back."""
    with factory() as session:
        yield session


def scoped(scope: str) -> DependsParam:
    """The route dependency that lets in only callers holding `scope` (403 otherwise)."""
    return Depends(require_scope(scope))


SettingsDep = Annotated[FeedbackSettings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
SessionmakerDep = Annotated[sessionmaker[Session], Depends(get_sessionmaker)]
MetricsDep = Annotated[FeedbackMetrics, Depends(get_metrics)]
OldestRecordDep = Annotated[OldestRecord, Depends(get_oldest_record)]

__all__ = ["CallerDep", "EngineDep", "MetricsDep", "OldestRecordDep", "SessionDep",
           "SessionmakerDep", "SettingsDep", "scoped"]
