"""`GET /v1/retention` and `POST /v1/retention/purge`: the retention policy, applied.

The purge takes no cutoff from the caller: it deletes what the configured period makes
due, batch by batch in short transactions, for up to `retention.CALL_BUDGET_S`
(`retention.purge_due`), and answers how much is still due, so the caller
(`medgo-train purge`, the daily CronJob) repeats it and prints progress. The answer
also carries `export_copy_cutoff`, which the trainer applies to the exports on the
model volume.
"""

from __future__ import annotations

from fastapi import APIRouter
from medgo_common.schemas.feedback import RetentionReport

from medgo_feedback import retention
from medgo_feedback.deps import (
    OldestRecordDep,
    SessionDep,
    SessionmakerDep,
    SettingsDep,
    scoped,
)
from medgo_feedback.scopes import RETENTION_RUN

router = APIRouter(prefix="/v1/retention", tags=["retention"])


@router.get("", response_model=RetentionReport, dependencies=[scoped(RETENTION_RUN)])
def get_retention(session: SessionDep, settings: SettingsDep) -> RetentionReport:
    """The policy, the oldest record kept, and what a purge would delete now."""
    return retention.report(session=session, settings=settings)


@router.post("/purge", response_model=RetentionReport, dependencies=[scoped(RETENTION_RUN)])
def purge(
    factory: SessionmakerDep, settings: SettingsDep, oldest: OldestRecordDep
) -> RetentionReport:
    """Delete due interactions with their ratings (bounded in time); repeat while `due`."""
    result = retention.purge_due(factory=factory, settings=settings)
    oldest.created_at = result.oldest_kept  # the gauge follows at once
    return result
