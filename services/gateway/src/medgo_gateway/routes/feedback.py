"""`POST /v1/feedback`: a clinician rates an answer; forwarded to the feedback service.

The rater is the caller's pseudonymous key id, never a name from the body. Free text
(comment, corrected answer) is de-identified before it leaves the gateway. Every
rating carries an idempotency key (the client's, or a fresh one), so a spooled rating
replayed later is applied once.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import JSONResponse
from medgo_common.errors import ErrorResponse, MedgoError
from medgo_common.schemas.feedback import REASON_LABELS_ZH, RatingIn, Reason, Verdict
from pydantic import BaseModel, ConfigDict, Field

from medgo_gateway.deid import DeidentificationFailedError
from medgo_gateway.deps import CallerDep, StateDep, require_role
from medgo_gateway.policy.auth import ApiKey, Role
from medgo_gateway.state import GatewayState

router = APIRouter(prefix="/v1", tags=["feedback"])

Clinician = Annotated[ApiKey, Depends(require_role(Role.clinician))]


class FeedbackIn(BaseModel):
    """What a clinician sends; `RatingIn` minus the rater, which comes from the key."""

    model_config = ConfigDict(extra="forbid")

    interaction_id: uuid.UUID
    verdict: Verdict
    reasons: list[Reason] = Field(default_factory=list, max_length=len(Reason))
    comment: str | None = Field(default=None, max_length=4000)
    corrected_answer: str | None = Field(default=None, max_length=20_000)


@router.post(
    "/feedback",
    status_code=201,
    responses={
        202: {"description": "feedback service unavailable: rating stored, delivered later"},
        **{s: {"model": ErrorResponse} for s in (400, 401, 403, 404, 409, 413, 429, 503)},
    },
)
async def rate_answer(
    body: FeedbackIn,
    caller: Clinician,
    state: StateDep,
    idempotency_key: Annotated[
        str | None, Header(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")
    ] = None,
) -> JSONResponse:
    """Rate one answer acceptable / unacceptable, with optional reasons and correction."""
    # Ratings share the key's request quota and in-flight cap: each one costs a
    # redaction and a write (429 past either).
    lease = await state.quotas.admit(caller)
    try:
        return await _rate(body, caller, state, idempotency_key)
    finally:
        await lease.release()


async def _rate(body: FeedbackIn, caller: ApiKey, state: GatewayState,
                idempotency_key: str | None) -> JSONResponse:
    """De-identify the free text (fails closed), then record the rating."""
    try:
        comment = await state.deid.atext(body.comment) if body.comment else body.comment
        corrected = (
            await state.deid.atext(body.corrected_answer)
            if body.corrected_answer
            else body.corrected_answer
        )
    except DeidentificationFailedError:
        raise MedgoError(
            503, "the rating could not be de-identified; it was not stored",
            code="redaction_failed",
        ) from None
    rating = RatingIn(
        interaction_id=body.interaction_id,
        rater=caller.id,
        verdict=body.verdict,
        reasons=body.reasons,
        comment=comment,
        corrected_answer=corrected,
        idempotency_key=idempotency_key or uuid.uuid4().hex,
    )
    status, answer = await state.recorder.rate(rating)
    return JSONResponse(answer, status_code=status)


class ReasonOut(BaseModel):
    value: Reason
    label: str


@router.get("/feedback/reasons", response_model=list[ReasonOut])
async def list_reasons(_: CallerDep) -> list[ReasonOut]:
    """The fixed list of reasons a rating may give, with the labels clinicians read."""
    return [ReasonOut(value=reason, label=REASON_LABELS_ZH[reason]) for reason in Reason]
