"""`GET /v1/stats`: ratings per day, acceptance per checkpoint and department, reasons."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import AwareDatetime

from medgo_feedback.deps import SessionDep, scoped
from medgo_feedback.schemas import Stats
from medgo_feedback.scopes import STATS_READ
from medgo_feedback.stats import compute_stats

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get("", response_model=Stats, dependencies=[scoped(STATS_READ)])
def get_stats(
    session: SessionDep, since: AwareDatetime | None = None, until: AwareDatetime | None = None
) -> Stats:
    return compute_stats(session=session, since=since, until=until)
