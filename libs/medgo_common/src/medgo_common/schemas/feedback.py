"""What the gateway sends the feedback store: interaction records and ratings.

Every text field here must already be redacted (`medgo_common.phi`) by the sender;
the feedback store re-checks and refuses records that still contain PHI.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medgo_common.schemas.openai import ChatMessage


class Verdict(StrEnum):
    acceptable = "acceptable"
    unacceptable = "unacceptable"


class Reason(StrEnum):
    """The fixed list of reasons a clinician may give (several allowed)."""

    factual_error = "factual_error"
    unsafe_advice = "unsafe_advice"
    wrong_drug_or_dose = "wrong_drug_or_dose"
    incomplete = "incomplete"
    outdated_guideline = "outdated_guideline"
    irrelevant = "irrelevant"
    other = "other"


# What clinicians read on the chat page: one label per reason, kept beside the enum so
# a new reason cannot reach the page without its label (tests check the two agree).
REASON_LABELS_ZH: dict[Reason, str] = {
    Reason.factual_error: "事实错误",
    Reason.unsafe_advice: "建议不安全",
    Reason.wrong_drug_or_dose: "药物或剂量错误",
    Reason.incomplete: "回答不完整",
    Reason.outdated_guideline: "依据的指南已过时",
    Reason.irrelevant: "答非所问",
    Reason.other: "其他",
}


class InteractionRecord(BaseModel):
    """One completed chat, as recorded by the gateway (streamed answers assembled)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID
    # Time-zone aware: a naive time is ambiguous across the gateway and the store.
    created_at: AwareDatetime
    user_id: str = Field(min_length=1, max_length=128, description="pseudonymous user id")
    department: str | None = Field(default=None, max_length=128)
    checkpoint_id: str = Field(min_length=1, max_length=256)
    adapter: str | None = Field(default=None, max_length=256)
    messages: list[ChatMessage] = Field(min_length=1, max_length=512)
    response: str = Field(max_length=200_000)
    finish_reason: str | None = Field(default=None, max_length=32)
    latency_ms: float = Field(ge=0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    # The OpenTelemetry trace of the request (32 lowercase hex), when tracing is on:
    # the way from an interaction to its spans in the gateway and vLLM.
    trace_id: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class RatingIn(BaseModel):
    """A clinician's rating of one interaction; one per rater, updatable."""

    model_config = ConfigDict(extra="forbid")

    interaction_id: uuid.UUID
    rater: str = Field(min_length=1, max_length=128, description="pseudonymous rater id")
    verdict: Verdict
    reasons: list[Reason] = Field(default_factory=list, max_length=len(Reason))
    comment: str | None = Field(default=None, max_length=4000)
    corrected_answer: str | None = Field(default=None, max_length=20_000)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class InteractionBatch(BaseModel):
    """Several records in one `POST /v1/interactions` (the gateway's spool replay)."""

    model_config = ConfigDict(extra="forbid")

    records: list[InteractionRecord] = Field(min_length=1)


class RecordCounts(BaseModel):
    """Interactions and the ratings that go with them (a purge removes both together)."""

    interactions: int = Field(ge=0)
    ratings: int = Field(ge=0)


class RetentionReport(BaseModel):
    """The feedback store's retention policy and where it stands (`/v1/retention`).

    The store owns the policy for every copy of its data: `export_copy_cutoff` is what
    the trainer's purge (`medgo-train purge`) applies to the exports the loop left on
    the model volume, so one setting decides how long a copy of a conversation lives.
    """

    retention_days: int = Field(description="interactions and their ratings are kept this long")
    export_copy_retention_days: int = Field(description="export copies are kept this long")
    cutoff: AwareDatetime = Field(description="interactions created before this are due")
    export_copy_cutoff: AwareDatetime = Field(description="copies written before this are due")
    oldest_kept: AwareDatetime | None = Field(
        description="creation time of the oldest interaction still stored (None: none)")
    purged: RecordCounts = Field(description="deleted by this call (0 for a look)")
    due: RecordCounts = Field(description="still past the period after this call")
