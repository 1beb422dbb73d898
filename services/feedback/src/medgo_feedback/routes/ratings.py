"""`POST /v1/ratings`: create or update a rater's rating (201 created, 200 otherwise).

The idempotency key may come as the `Idempotency-Key` header or in the body; if both
are given they must agree. The rating is written on a plain connection in one
transaction that commits before the answer is sent: a 2xx means it is durable.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Response
from medgo_common.errors import ErrorResponse, MedgoError
from medgo_common.schemas.feedback import RatingIn

from medgo_feedback import store
from medgo_feedback.deps import EngineDep, MetricsDep, scoped
from medgo_feedback.privacy import refuse_phi_in_rating
from medgo_feedback.schemas import RatingResult
from medgo_feedback.scopes import RATINGS_WRITE

router = APIRouter(prefix="/v1/ratings", tags=["ratings"])


@router.post(
    "", response_model=RatingResult, status_code=201, dependencies=[scoped(RATINGS_WRITE)],
    responses={200: {"model": RatingResult, "description": "updated, or a replay"},
               **{s: {"model": ErrorResponse} for s in (404, 409)}},
)
def post_rating(
    rating: RatingIn,
    response: Response,
    engine: EngineDep,
    metrics: MetricsDep,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=128)] = None,
) -> RatingResult:
    if idempotency_key and rating.idempotency_key and idempotency_key != rating.idempotency_key:
        raise MedgoError(
            422,
            "the Idempotency-Key header and the body's idempotency_key differ",
            code="invalid_value",
            param="idempotency_key",
        )
    refuse_phi_in_rating(rating)
    with engine.begin() as connection:
        stored, outcome = store.upsert_rating(
            connection=connection,
            rating=rating,
            idempotency_key=idempotency_key or rating.idempotency_key,
        )
    metrics.ratings.labels(outcome=outcome.value).inc()
    if outcome is not store.RatingOutcome.created:
        response.status_code = 200
    return RatingResult(**stored, outcome=outcome)
