"""The feedback store's tables (SQLAlchemy 2 declarative, `Mapped[...]`).

Times are stored as naive UTC (`UtcDateTime`): SQLite has no time-zone type and would
otherwise keep a client's local wall time, so one representation serves both
databases and "ratings per day" means UTC days everywhere.

`Interaction.prompt_key` is a hash of the redacted prompt messages; the DPO export
pairs responses to the same prompt through it without comparing JSON documents.
`Rating.reasons` is stored as canonical text (sorted, comma-joined) rather than a JSON
array, so the reasons histogram is a plain GROUP BY on both databases.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, naive UTC in the database."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: MedGo stores only time-zone-aware times")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class ReasonList(TypeDecorator[list[str]]):
    """A set of `Reason` values as sorted comma-joined text ('' when none)."""

    impl = String(256)
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Any) -> str:
        return ",".join(sorted(set(value or ())))

    def process_result_value(self, value: str | None, dialect: Any) -> list[str]:
        return value.split(",") if value else []


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class Interaction(Base):
    """One answered chat, redacted by the gateway and re-checked here."""

    __tablename__ = "interactions"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    user_id: Mapped[str] = mapped_column(String(128))
    department: Mapped[str | None] = mapped_column(String(128))
    checkpoint_id: Mapped[str] = mapped_column(String(256))
    adapter: Mapped[str | None] = mapped_column(String(256))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    prompt_key: Mapped[str] = mapped_column(String(64))
    response: Mapped[str] = mapped_column(Text)
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    latency_ms: Mapped[float] = mapped_column(Float)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    trace_id: Mapped[str | None] = mapped_column(String(32))  # OpenTelemetry, when on

    ratings: Mapped[list[Rating]] = relationship(
        back_populates="interaction",
        order_by="Rating.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        Index("ix_interactions_created_at", "created_at"),
        Index("ix_interactions_checkpoint_created", "checkpoint_id", "created_at"),
        Index("ix_interactions_prompt_key", "prompt_key"),
    )


class Rating(Base):
    """A clinician's verdict on an interaction: one per rater, updated in place."""

    __tablename__ = "ratings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    interaction_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("interactions.id", ondelete="CASCADE")
    )
    rater: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[str]] = mapped_column(ReasonList)
    comment: Mapped[str | None] = mapped_column(Text)
    corrected_answer: Mapped[str | None] = mapped_column(Text)
    # The key of the latest write; all keys ever used are in `rating_keys`.
    idempotency_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    interaction: Mapped[Interaction] = relationship(back_populates="ratings")

    __table_args__ = (
        UniqueConstraint("interaction_id", "rater", name="uq_ratings_interaction_rater"),
        CheckConstraint("verdict IN ('acceptable', 'unacceptable')", name="ck_ratings_verdict"),
        Index("ix_ratings_created_at", "created_at"),
    )


class RatingKey(Base):
    """Every idempotency key a rating was written with (a retry is known forever)."""

    __tablename__ = "rating_keys"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    rating_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("ratings.id", ondelete="CASCADE"), index=True
    )


class ExportAudit(Base):
    """Who exported which slice of the ratings, when, and how many rows left."""

    __tablename__ = "export_audit"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    caller: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(8))
    filters: Mapped[dict[str, Any]] = mapped_column(JSON)
    row_count: Mapped[int] = mapped_column(Integer, default=0)
    completed: Mapped[bool] = mapped_column(default=False)

    __table_args__ = (Index("ix_export_audit_started_at", "started_at"),)


class GateOverride(Base):
    """Ops took a canary to 100 % against (or without) the online gate: who, why, on what."""

    __tablename__ = "gate_overrides"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    stable: Mapped[str] = mapped_column(String(128))
    candidate: Mapped[str] = mapped_column(String(128))
    verdict: Mapped[str] = mapped_column(String(32))  # the gate's verdict when overridden
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(128))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)  # the GateResult at that moment

    __table_args__ = (Index("ix_gate_overrides_pair", "stable", "candidate", "created_at"),)
