"""The retention policy: how long conversations, ratings and copies of them are kept.

The feedback store owns clinicians' conversations, so it owns how long *any* copy of
them may live: `retention_days` for the interactions and their ratings here,
`export_copy_retention_days` for the exports the training loop copies onto the model
volume. The store purges its own rows (`purge_due`: the admin CLI and
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

import time
from datetime import datetime, timedelta

from medgo_common.schemas.feedback import RecordCounts, RetentionReport
from sqlalchemy.orm import Session, sessionmaker

from medgo_feedback import store
from medgo_feedback.models import utcnow
from medgo_feedback.settings import FeedbackSettings

#: How long one purge call deletes before it reports (well under an HTTP client's
#: timeout; each batch inside is its own short transaction).
CALL_BUDGET_S = 20.0


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
    *, factory: sessionmaker[Session], settings: FeedbackSettings, cutoff: datetime
) -> store.PurgeCounts:
    """Delete the oldest `purge_batch_rows` due interactions with their ratings, in one
    transaction (SQLite's writer lock is held that long, not for the whole backlog)."""
    with factory.begin() as session:
        return store.purge_older_than(
            session=session, cutoff=cutoff, limit=settings.purge_batch_rows
        )


def purge_due(
    *, factory: sessionmaker[Session], settings: FeedbackSettings, now: datetime | None = None,
    retention_days: int | None = None, budget_s: float = CALL_BUDGET_S,
) -> RetentionReport:
    """Purge batch after batch for up to `budget_s`, then report once.

    Idempotent: a store with nothing due is left untouched. Counting what is still due
    costs a scan of the due range, so it is done once per call, not per batch; a caller
    with a backlog larger than one call's budget repeats the call (`due` > 0), printing
    progress in between.
    """
    now = now or utcnow()
    cutoff = now - timedelta(days=retention_days or settings.retention_days)
    total = store.PurgeCounts(interactions=0, ratings=0)
    started = time.monotonic()
    while True:  # at least one batch, whatever the budget
        purged = purge_batch(factory=factory, settings=settings, cutoff=cutoff)
        total = store.PurgeCounts(interactions=total.interactions + purged.interactions,
                                  ratings=total.ratings + purged.ratings)
        if purged.interactions < settings.purge_batch_rows:
            break  # nothing more is due
        if time.monotonic() - started >= budget_s:
            break
    with factory() as session:
        return report(session=session, settings=settings, now=now, purged=total,
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
