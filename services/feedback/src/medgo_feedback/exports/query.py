"""The one query every export reads: rated interactions with their resolved label.

Conflicting ratings rule. Each rater has one (latest) rating per interaction. An
interaction counts as *acceptable* when a strict majority of its raters said
acceptable; otherwise (a majority said unacceptable, or a tie) it counts as
*unacceptable* — in medicine a split vote is a doubt, and a doubtful answer must not
be taught as a good one. Its *correction* is the corrected answer of the most recently
updated `unacceptable` rating that has one, and is used only when the interaction
resolves to unacceptable and the text differs from the response.

Filters: `since`/`until` select interactions by their creation time (half-open
window, `since` included), `checkpoint` by the checkpoint that answered, and
`min_raters` keeps only interactions rated by at least that many clinicians.

Rows are streamed (`yield_per`: a server-side cursor on PostgreSQL, an incremental
cursor on SQLite), so memory does not grow with the size of the export. The query
runs on the session's Core connection: the rows are plain tuples, and the ORM's
per-row loading machinery would only add cost to a million-row export.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from medgo_feedback.models import Interaction, Rating


@dataclass(frozen=True)
class ExportFilter:
    since: datetime | None = None
    until: datetime | None = None
    checkpoint: str | None = None
    min_raters: int = 1

    def describe(self) -> dict[str, Any]:
        """JSON-ready form, for the export audit trail."""
        return {
            key: value.isoformat() if isinstance(value, datetime) else value
            for key, value in asdict(self).items()
        }


class RatedInteraction(NamedTuple):
    id: uuid.UUID
    prompt_key: str
    messages: list[dict[str, Any]]
    response: str
    accepted: bool
    correction: str | None


def rated_interactions(
    *, session: Session, where: ExportFilter, by_prompt: bool, batch_rows: int
) -> Iterator[RatedInteraction]:
    """Stream rated interactions; `by_prompt` groups equal prompts, acceptable first."""
    votes = (
        select(
            Rating.interaction_id.label("interaction_id"),
            func.count().label("raters"),
            func.sum(case((Rating.verdict == "acceptable", 1), else_=0)).label("acceptable"),
        )
        .group_by(Rating.interaction_id)
        .having(func.count() >= where.min_raters)
        .subquery()
    )
    accepted = (votes.c.acceptable * 2 > votes.c.raters).label("accepted")
    correction = (
        select(Rating.corrected_answer)
        .where(
            Rating.interaction_id == Interaction.id,
            Rating.verdict == "unacceptable",
            Rating.corrected_answer.is_not(None),
        )
        .order_by(Rating.updated_at.desc(), Rating.id.desc())
        .limit(1)
        .correlate(Interaction)
        .scalar_subquery()
        .label("correction")
    )
    statement = select(
        Interaction.id,
        Interaction.prompt_key,
        Interaction.messages,
        Interaction.response,
        accepted,
        correction,
    ).join(votes, votes.c.interaction_id == Interaction.id)
    if where.since is not None:
        statement = statement.where(Interaction.created_at >= where.since)
    if where.until is not None:
        statement = statement.where(Interaction.created_at < where.until)
    if where.checkpoint is not None:
        statement = statement.where(Interaction.checkpoint_id == where.checkpoint)
    if by_prompt:
        statement = statement.order_by(
            Interaction.prompt_key, accepted.desc(), Interaction.created_at, Interaction.id
        )
    else:
        statement = statement.order_by(Interaction.created_at, Interaction.id)
    result = session.connection().execute(statement, execution_options={"yield_per": batch_rows})
    for interaction_id, key, messages, response, accepted, correction in result:
        if accepted or (correction is not None and correction.strip() == response.strip()):
            correction = None
        yield RatedInteraction(
            interaction_id, key, messages, response, bool(accepted), correction
        )
