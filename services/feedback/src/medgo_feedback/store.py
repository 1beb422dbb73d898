"""Database operations: plain functions, keyword-only, the session passed in.

Idempotency is enforced by the database, not by luck:
- an interaction's `id` is its primary key; inserting a known id is a no-op
  (`ON CONFLICT DO NOTHING`), so the gateway can replay its spool at will;
- a rating is unique per (interaction, rater) and written with
  `ON CONFLICT DO UPDATE`: a rater who changes their mind updates their one rating;
- every `Idempotency-Key` a rating was written with is remembered (`rating_keys`):
  a request repeating one gets the stored rating back unchanged, so a late retry
  never overwrites a newer write. Reusing a key for another interaction or rater is
  a conflict.

Callers commit: one request is one transaction, so nothing is ever half-written.
The ingest functions take a Core `Connection` (the hot path); the rest an ORM `Session`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from medgo_common.schemas.feedback import InteractionRecord, RatingIn
from sqlalchemy import (
    Connection,
    RowMapping,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from medgo_feedback.models import ExportAudit, Interaction, Rating, RatingKey, utcnow


class UnknownInteractionError(LookupError):
    """The rating names an interaction the store has never received."""


class IdempotencyConflictError(ValueError):
    """The idempotency key was already used for another interaction or rater."""


class RatingOutcome(StrEnum):
    created = "created"
    updated = "updated"
    replayed = "replayed"


@dataclass(frozen=True)
class IngestCounts:
    inserted: int
    duplicates: int


@dataclass(frozen=True)
class PurgeCounts:
    interactions: int
    ratings: int


def _insert(dialect: str, table: Any):
    """The dialect's INSERT, which has ON CONFLICT on both SQLite and PostgreSQL."""
    return (postgresql if dialect == "postgresql" else sqlite).insert(table)


# What a rater's new rating replaces in their existing one (created_at stays).
_RATING_UPDATES = (
    "verdict", "reasons", "comment", "corrected_answer", "idempotency_key", "updated_at"
)
_RATINGS = Rating.__table__
_INTERACTIONS = Interaction.__table__


@functools.cache
def _rating_upsert(dialect: str):
    """Built once per dialect: composing this statement costs more than running it."""
    statement = _insert(dialect, _RATINGS)
    return statement.on_conflict_do_update(
        index_elements=["interaction_id", "rater"],
        set_={key: statement.excluded[key] for key in _RATING_UPDATES},
    ).returning(*_RATINGS.c)


@functools.cache
def _interactions_insert(dialect: str):
    """Known ids are skipped by the database; RETURNING tells which rows are new."""
    statement = _insert(dialect, _INTERACTIONS).on_conflict_do_nothing(index_elements=["id"])
    return statement.returning(_INTERACTIONS.c.id)


# One round trip answers both "does the interaction exist" and "is this an update".
_RATER = bindparam("rater")
_FIND_RATING = (
    select(_INTERACTIONS.c.id, _RATINGS.c.id)
    .outerjoin(
        _RATINGS,
        (_RATINGS.c.interaction_id == _INTERACTIONS.c.id) & (_RATINGS.c.rater == _RATER),
    )
    .where(_INTERACTIONS.c.id == bindparam("interaction_id"))
)
_RATING_BY_KEY = (
    select(*_RATINGS.c)
    .join(RatingKey.__table__)
    .where(RatingKey.__table__.c.key == bindparam("key"))
)
_REMEMBER_KEY = insert(RatingKey.__table__)


def prompt_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """Messages as TRL's conversational format wants them: role and text content."""
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(
                str(part.get("text", "")) for part in content if part.get("type") == "text"
            )
        out.append({"role": message["role"], "content": content or ""})
    return out


def prompt_key(messages: Iterable[dict[str, Any]]) -> str:
    """Stable hash of a prompt, so the same question asked twice groups together."""
    canonical = json.dumps(prompt_messages(messages), ensure_ascii=False, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def add_interactions(
    *, connection: Connection, records: Sequence[InteractionRecord]
) -> IngestCounts:
    """Insert the records whose id is new; known ids are left exactly as stored.

    Core rather than the ORM, and one INSERT for the whole batch: the database skips
    the known ids (`ON CONFLICT DO NOTHING`) and returns the new ones, so there is no
    separate look-up round trip.
    """
    fresh: dict[uuid.UUID, dict[str, Any]] = {}
    received_at = utcnow()
    for record in records:
        if record.id in fresh:
            continue
        # Only role and content are kept: they are what the PHI check has read, and
        # extra OpenAI fields (`name`, tool calls) are no training data.
        messages = [{"role": m.role, "content": m.content} for m in record.messages]
        fresh[record.id] = {
            **record.model_dump(exclude={"messages"}),
            "messages": messages,
            "prompt_key": prompt_key(messages),
            "received_at": received_at,
        }
    statement = _interactions_insert(connection.dialect.name)
    inserted = len(connection.execute(statement, list(fresh.values())).all())
    return IngestCounts(inserted=inserted, duplicates=len(records) - inserted)


def get_interaction(*, session: Session, interaction_id: uuid.UUID) -> Interaction | None:
    """The interaction with its ratings (oldest first), or None."""
    statement = (
        select(Interaction)
        .where(Interaction.id == interaction_id)
        .options(selectinload(Interaction.ratings))
    )
    return session.scalar(statement)


def upsert_rating(
    *, connection: Connection, rating: RatingIn, idempotency_key: str | None
) -> tuple[RowMapping, RatingOutcome]:
    """Create or update the rater's rating of the interaction (see module docstring).

    This is the ingest hot path, so it runs pre-built Core statements on a plain
    connection (no ORM unit of work) and returns the stored row as a mapping.
    """
    if idempotency_key is not None:
        stored = connection.execute(_RATING_BY_KEY, {"key": idempotency_key}).mappings().first()
        if stored is not None:
            if (stored["interaction_id"], stored["rater"]) != (rating.interaction_id, rating.rater):
                raise IdempotencyConflictError(
                    "this Idempotency-Key was already used for another interaction or rater"
                )
            return stored, RatingOutcome.replayed
    found = connection.execute(
        _FIND_RATING, {"interaction_id": rating.interaction_id, "rater": rating.rater}
    ).first()
    if found is None:
        raise UnknownInteractionError(f"no interaction with id {rating.interaction_id}")
    existed = found[1] is not None
    now = utcnow()
    params = {
        "interaction_id": rating.interaction_id,
        "rater": rating.rater,
        "created_at": now,
        "updated_at": now,
        "verdict": rating.verdict.value,
        "reasons": [reason.value for reason in rating.reasons],
        "comment": rating.comment,
        "corrected_answer": rating.corrected_answer,
        "idempotency_key": idempotency_key,
    }
    upsert = _rating_upsert(connection.dialect.name)
    stored = connection.execute(upsert, params).mappings().one()
    if idempotency_key is not None:
        connection.execute(_REMEMBER_KEY, {"key": idempotency_key, "rating_id": stored["id"]})
    return stored, RatingOutcome.updated if existed else RatingOutcome.created


def purge_older_than(
    *, session: Session, cutoff: datetime, limit: int | None = None
) -> PurgeCounts:
    """Delete interactions created before `cutoff` together with their ratings.

    With `limit`, only that many of the oldest go, so a large first purge runs as many
    short transactions (SQLite's one writer lock is held briefly and ingest keeps
    going) and reports progress; run it until `count_older_than` is zero. Ratings are
    deleted explicitly rather than by the foreign key's cascade, so the counts are exact
    and the purge does not depend on SQLite's foreign-key pragma.
    """
    old = (
        select(Interaction.id)
        .where(Interaction.created_at < cutoff)
        .order_by(Interaction.created_at, Interaction.id)
        .limit(limit)
    )
    ids = list(session.scalars(old))
    if not ids:
        return PurgeCounts(interactions=0, ratings=0)
    old_ratings = select(Rating.id).where(Rating.interaction_id.in_(ids))
    session.execute(delete(RatingKey).where(RatingKey.rating_id.in_(old_ratings)))
    ratings = session.execute(delete(Rating).where(Rating.interaction_id.in_(ids)))
    interactions = session.execute(delete(Interaction).where(Interaction.id.in_(ids)))
    return PurgeCounts(interactions=interactions.rowcount, ratings=ratings.rowcount)


def count_older_than(*, session: Session, cutoff: datetime) -> PurgeCounts:
    """What `purge_older_than(cutoff=...)` would delete, without deleting it."""
    old = select(Interaction.id).where(Interaction.created_at < cutoff)
    interactions = session.scalar(select(func.count()).select_from(old.subquery()))
    ratings = session.scalar(
        select(func.count()).select_from(Rating).where(Rating.interaction_id.in_(old))
    )
    return PurgeCounts(interactions=interactions or 0, ratings=ratings or 0)


def oldest_interaction_at(*, session: Session) -> datetime | None:
    """Creation time of the oldest interaction kept (an index read: `created_at`)."""
    return session.scalar(select(func.min(Interaction.created_at)))


def start_export_audit(
    *, session: Session, caller: str, kind: str, filters: dict[str, Any]
) -> int:
    """Record an export before its first row leaves, so even an aborted one is audited."""
    audit = ExportAudit(caller=caller, kind=kind, filters=filters, row_count=0, completed=False)
    session.add(audit)
    session.flush()
    return audit.id


def finish_export_audit(
    *, session: Session, audit_id: int, row_count: int, completed: bool
) -> None:
    session.execute(
        update(ExportAudit)
        .where(ExportAudit.id == audit_id)
        .values(row_count=row_count, completed=completed, finished_at=utcnow())
    )
