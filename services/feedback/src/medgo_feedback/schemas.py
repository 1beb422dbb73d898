"""What the feedback API answers (its "Public" shapes); requests use medgo_common's.

Rows are converted here rather than returned directly, so a new internal column
(like `prompt_key`) never leaks into the API by accident.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from medgo_feedback.store import RatingOutcome


class IngestResult(BaseModel):
    """Answer to `POST /v1/interactions`: how many were new, how many already known."""

    inserted: int
    duplicates: int


class RatingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    interaction_id: uuid.UUID
    rater: str
    verdict: str
    reasons: list[str]
    comment: str | None
    corrected_answer: str | None
    idempotency_key: str | None
    created_at: datetime
    updated_at: datetime


class RatingResult(RatingPublic):
    outcome: RatingOutcome


class InteractionPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    created_at: datetime
    received_at: datetime
    user_id: str
    department: str | None
    checkpoint_id: str
    adapter: str | None
    messages: list[dict[str, Any]]
    response: str
    finish_reason: str | None
    latency_ms: float
    prompt_tokens: int
    completion_tokens: int
    trace_id: str | None  # the OpenTelemetry trace, when the gateway traced the request
    ratings: list[RatingPublic]


class DayCount(BaseModel):
    day: date
    ratings: int


class Acceptance(BaseModel):
    """Share of ratings that said `acceptable`, for one checkpoint or department."""

    key: str | None
    ratings: int
    acceptable: int
    acceptance_rate: float


class Stats(BaseModel):
    ratings_per_day: list[DayCount]
    by_checkpoint: list[Acceptance]
    by_department: list[Acceptance]
    reasons: dict[str, int]
