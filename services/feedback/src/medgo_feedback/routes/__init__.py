"""The `/v1` routers, collected so `app.py` mounts them once, behind service auth.

The error answers every `/v1` route may give are documented here once (a bad or
missing token, a missing scope, a body over the limit, the database unavailable), so
the OpenAPI schema lists every status a client can see (checked by
tests/test_schemathesis.py); route-specific ones are on their routes.
"""

from __future__ import annotations

from fastapi import APIRouter
from medgo_common.errors import ErrorResponse

from medgo_feedback.routes import exports, gate, interactions, ratings, retention, stats

api_router = APIRouter(responses={s: {"model": ErrorResponse} for s in (401, 403, 413, 503)})
for module in (interactions, ratings, exports, stats, gate, retention):
    api_router.include_router(module.router)
