"""The `/v1` routers, collected so `app.py` mounts them once, behind service auth."""

from __future__ import annotations

from fastapi import APIRouter

from medgo_feedback.routes import exports, gate, interactions, ratings, retention, stats

api_router = APIRouter()
for module in (interactions, ratings, exports, stats, gate, retention):
    api_router.include_router(module.router)
