"""`POST /v1/interactions` (one record or a batch) and `GET /v1/interactions/{id}`.

A batch is all-or-nothing: one invalid record, or one still holding PHI, refuses the
whole batch with the offending field named (`records.3.response`) and nothing is
written; the gateway then retries its records one by one.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.exceptions import RequestValidationError
from medgo_common.errors import ErrorResponse, MedgoError
from medgo_common.schemas.feedback import InteractionBatch, InteractionRecord
from pydantic import ValidationError

from medgo_feedback import store
from medgo_feedback.deps import EngineDep, MetricsDep, SessionDep, SettingsDep, scoped
from medgo_feedback.privacy import refuse_phi_in_records
from medgo_feedback.schemas import IngestResult, InteractionPublic
from medgo_feedback.scopes import INTERACTIONS_READ, INTERACTIONS_WRITE

router = APIRouter(prefix="/v1/interactions", tags=["interactions"])


def _parse(body: dict[str, Any]) -> tuple[list[InteractionRecord], bool]:
    """One record, or `{"records": [...]}`; errors keep FastAPI's field locations."""
    try:
        if "records" in body:
            return InteractionBatch.model_validate(body).records, True
        return [InteractionRecord.model_validate(body)], False
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None


@router.post(
    "", response_model=IngestResult, status_code=201,
    dependencies=[scoped(INTERACTIONS_WRITE)],
    responses={200: {"model": IngestResult, "description": "every record was already stored"},
               409: {"model": ErrorResponse}},
)
def post_interactions(
    body: Annotated[dict[str, Any], Body()],
    response: Response,
    engine: EngineDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> IngestResult:
    """Store new records; ids already stored are acknowledged and left untouched."""
    records, batch = _parse(body)
    if len(records) > settings.max_batch_records:
        raise MedgoError(
            413,
            f"{len(records)} records in one batch; send at most {settings.max_batch_records}",
            code="batch_too_large",
            param="records",
        )
    refuse_phi_in_records(records, batch=batch)
    with engine.begin() as connection:  # committed before the answer: 2xx means durable
        counts = store.add_interactions(connection=connection, records=records)
    metrics.interactions.labels(result="inserted").inc(counts.inserted)
    metrics.interactions.labels(result="duplicate").inc(counts.duplicates)
    if counts.inserted == 0:
        response.status_code = 200
    return IngestResult(inserted=counts.inserted, duplicates=counts.duplicates)


@router.get(
    "/{interaction_id}", response_model=InteractionPublic,
    dependencies=[scoped(INTERACTIONS_READ)], responses={404: {"model": ErrorResponse}},
)
def get_interaction(interaction_id: uuid.UUID, session: SessionDep) -> InteractionPublic:
    interaction = store.get_interaction(session=session, interaction_id=interaction_id)
    if interaction is None:
        raise MedgoError(
            404, f"no interaction with id {interaction_id}", code="interaction_not_found"
        )
    return InteractionPublic.model_validate(interaction)
