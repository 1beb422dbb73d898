"""The retention policy: how long conversations, ratings and copies of them are kept.

The feedback store owns clinicians' conversations, so it owns how long *any* copy of
them may live: `retention_days` for the interactions and their ratings here,
`export_copy_retention_days` for the exports the training loop copies onto the model
volume. The store purges its own rows (`purge_batch`: the admin CLI and
`POST /v1/retention/purge`); the trainer, which owns the model volume, removes the
copies past `export_copy_cutoff` that this module reports (`medgo-train purge`, the
daily CronJob). A record is due when its interaction was created before the cutoff;
its ratings go with it, whenever they were given.

`OldestRecord` keeps the creation time of the oldest interaction for the gauge
`medgo_feedback_oldest_record_age_seconds`: re-read from the database in the
background (`retention_refresh_s`) and after each purge, and turned into an age at
scrape time, so the gauge keeps growing even when a re-read fails and a purge that
stopped running cannot hide behind a stale value (alert MedgoRetentionOverdue).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from medgo_common.schemas.feedback import RecordCounts, RetentionReport
from sqlalchemy.orm import Session, sessionmaker

from medgo_feedback import store
from medgo_feedback.models import utcnow
from medgo_feedback.settings import FeedbackSettings

log = logging.getLogger(__name__)


def _counts(counts: store.PurgeCounts) -> RecordCounts:
    return RecordCounts(interactions=counts.interactions, ratings=counts.ratings)


def report(
    *, session: Session, settings: FeedbackSettings, now: datetime | None = None,
    purged: store.PurgeCounts | None = None, retention_days: int | None = None,
) -> RetentionReport:
    """Where the store stands against the policy (`retention_days`: an ops override)."""
    now = now or utcnow()
    days = retention_days or settings.retention_days
    cutoff = now - timedelta(days=days)
    return RetentionReport(
        retention_days=days,
        export_copy_retention_days=settings.export_copy_retention_days,
        cutoff=cutoff,
        export_copy_cutoff=now - timedelta(days=settings.export_copy_retention_days),
        oldest_kept=store.oldest_interaction_at(session=session),
        purged=_counts(purged or store.PurgeCounts(interactions=0, ratings=0)),
        due=_counts(store.count_older_than(session=session, cutoff=cutoff)),
    )


def purge_batch(
    *, factory: sessionmaker[Session], settings: FeedbackSettings, now: datetime | None = None,
    retention_days: int | None = None,
) -> RetentionReport:
    """Delete one batch (`purge_batch_rows`) of due interactions, in one transaction.

    Idempotent: a store with nothing due is left untouched. Callers repeat it until
    `due.interactions` is 0, reporting progress in between.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days or settings.retention_days)
    with factory.begin() as session:
        purged = store.purge_older_than(
            session=session, cutoff=cutoff, limit=settings.purge_batch_rows
        )
    with factory() as session:
        return report(session=session, settings=settings, now=now, purged=purged,
                      retention_days=retention_days)


class OldestRecord:
    """The oldest interaction's creation time, cached for the age gauge."""

    def __init__(self) -> None:
        self.created_at: datetime | None = None

    def refresh(self, factory: sessionmaker[Session]) -> None:
        with factory() as session:
            self.created_at = store.oldest_interaction_at(session=session)

    def age_seconds(self) -> float:
        """Seconds since the oldest kept interaction was created; 0 for an empty store."""
        if self.created_at is None:
            return 0.0
        return max(0.0, (utcnow() - self.created_at).total_seconds())
