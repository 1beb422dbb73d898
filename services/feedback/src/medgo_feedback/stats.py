"""Rating statistics for dashboards: volume per day, acceptance, reasons.

Acceptance rates count ratings (every rater's verdict is one vote), not resolved
interactions: they answer "how often do clinicians accept this checkpoint's answers".
Days are UTC days of the rating's first submission. The optional window filters on
that same time.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import Session

from medgo_feedback.models import Interaction, Rating
from medgo_feedback.schemas import Acceptance, DayCount, Stats

_ACCEPTED = func.sum(case((Rating.verdict == "acceptable", 1), else_=0))


def _window(statement: Select, since: datetime | None, until: datetime | None) -> Select:
    if since is not None:
        statement = statement.where(Rating.created_at >= since)
    if until is not None:
        statement = statement.where(Rating.created_at < until)
    return statement


def _acceptance(session: Session, column, since, until, keys=None) -> list[Acceptance]:
    statement = _window(
        select(column, func.count(Rating.id), _ACCEPTED)
        .join(Interaction, Rating.interaction_id == Interaction.id)
        .group_by(column)
        .order_by(column),
        since,
        until,
    )
    if keys is not None:
        statement = statement.where(column.in_(keys))
    return [
        Acceptance(
            key=key, ratings=total, acceptable=int(accepted), acceptance_rate=accepted / total
        )
        for key, total, accepted in session.execute(statement)
    ]


def compute_stats(
    *, session: Session, since: datetime | None = None, until: datetime | None = None
) -> Stats:
    day = func.date(Rating.created_at)
    per_day = session.execute(
        _window(select(day, func.count(Rating.id)).group_by(day).order_by(day), since, until)
    )
    reasons: Counter[str] = Counter()
    combos = _window(select(Rating.reasons, func.count()).group_by(Rating.reasons), since, until)
    for combo, count in session.execute(combos):
        for reason in combo:
            reasons[reason] += count
    return Stats(
        ratings_per_day=[DayCount(day=d, ratings=n) for d, n in per_day],
        by_checkpoint=_acceptance(session, Interaction.checkpoint_id, since, until),
        by_department=_acceptance(session, Interaction.department, since, until),
        reasons=dict(sorted(reasons.items())),
    )


def checkpoint_counts(
    *, session: Session, checkpoints: list[str], since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, tuple[int, int]]:
    """(acceptable, ratings) of the given checkpoints, for the online gate."""
    rows = _acceptance(session, Interaction.checkpoint_id, since, until, keys=checkpoints)
    return {row.key: (row.acceptable, row.ratings) for row in rows if row.key is not None}
