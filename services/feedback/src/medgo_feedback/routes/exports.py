"""`GET /v1/exports/{dpo|kto|sft}`: streamed JSONL in TRL's dataset formats.

The first row is produced before the response starts, so a database that is down
answers 503 rather than a 200 with an empty or broken body.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import chain
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse
from medgo_common.errors import MedgoError
from pydantic import AwareDatetime

from medgo_feedback.deps import CallerDep, MetricsDep, SessionmakerDep, SettingsDep, scoped
from medgo_feedback.exports import ExportKind, jsonl_chunks, stream_export
from medgo_feedback.exports.query import ExportFilter
from medgo_feedback.metrics import FeedbackMetrics
from medgo_feedback.scopes import EXPORTS_READ

router = APIRouter(prefix="/v1/exports", tags=["exports"])


@router.get(
    "/{kind}", dependencies=[scoped(EXPORTS_READ)], response_class=StreamingResponse,
    responses={200: {"description": "one JSON object per line (TRL's dataset format)",
                     "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}},
)
def get_export(
    kind: ExportKind,
    caller: CallerDep,
    factory: SessionmakerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
    since: AwareDatetime | None = None,
    until: AwareDatetime | None = None,
    checkpoint: Annotated[str | None, Query(min_length=1, max_length=256)] = None,
    min_raters: Annotated[int, Query(ge=1, le=1000)] = 1,
) -> StreamingResponse:
    if since is not None and until is not None and since >= until:
        raise MedgoError(422, "`since` must be before `until`", code="invalid_value", param="since")
    where = ExportFilter(since=since, until=until, checkpoint=checkpoint, min_raters=min_raters)
    rows = stream_export(
        factory=factory,
        caller=caller,
        kind=kind,
        where=where,
        batch_rows=settings.export_batch_rows,
    )
    first = next(rows, None)
    metrics.exports.labels(kind=kind.value, caller=caller).inc()  # audited once it started
    counted = _counted(chain([first], rows) if first is not None else iter(()), metrics, kind)
    return StreamingResponse(
        jsonl_chunks(counted),
        media_type="application/x-ndjson",
        headers={"Content-Disposition": f'attachment; filename="medgo-{kind.value}.jsonl"'},
    )


def _counted(
    rows: Iterator[dict[str, Any]], metrics: FeedbackMetrics, kind: ExportKind
) -> Iterator[dict[str, Any]]:
    counter = metrics.export_rows.labels(kind=kind.value)
    for row in rows:
        counter.inc()
        yield row
