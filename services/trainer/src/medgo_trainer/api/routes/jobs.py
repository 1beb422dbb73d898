"""`/v1/jobs`: submit, inspect, read the log of, and cancel training jobs.

Every error a route can answer is in its `responses`, so the OpenAPI schema lists each
status a client may see (checked by tests/api/test_schemathesis.py).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Query, Response
from fastapi.responses import PlainTextResponse
from medgo_common.errors import ErrorResponse

from medgo_trainer.api.deps import JobDep, RunnerDep, WriterDep
from medgo_trainer.api.schemas import JobCreate, JobPublic
from medgo_trainer.api.store import JobRow
from medgo_trainer.training.executors import local

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses={401: {"model": ErrorResponse}})
_NOT_FOUND = {404: {"model": ErrorResponse}}
_CONFLICT = {409: {"model": ErrorResponse}}


def _public(job: JobRow) -> JobPublic:
    step_total = local.progress(Path(job.log_path))
    return JobPublic(
        id=job.id, stage=job.stage, recipe=job.recipe, overrides=job.overrides,
        status=job.status, created_at=job.created_at, finished_at=job.finished_at,
        exit_code=job.exit_code, out_dir=job.out_dir, submitted_by=job.submitted_by,
        progress={"step": step_total[0], "total": step_total[1]} if step_total else None,
    )


@router.post("", status_code=201, response_model=JobPublic, responses=_CONFLICT)
def create_job(body: JobCreate, caller: WriterDep, runner: RunnerDep) -> JobPublic:
    return _public(runner.submit(body, caller))


@router.get("/{job_id}", response_model=JobPublic, responses=_NOT_FOUND)
def read_job(job: JobDep) -> JobPublic:
    return _public(job)


# `response_class=Response` (no media type of its own) so the schema says text/plain for
# the log and JSON for the error, as sent; FastAPI would otherwise label both text/plain.
@router.get(
    "/{job_id}/logs", response_class=Response,
    responses={200: {"description": "the job's log, its last `max_bytes`",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
               **_NOT_FOUND},
)
def read_logs(
    job: JobDep, max_bytes: int = Query(1 << 20, ge=1, le=16 << 20)
) -> PlainTextResponse:
    return PlainTextResponse(local.read_log(Path(job.log_path), max_bytes=max_bytes))


@router.post("/{job_id}/cancel", response_model=JobPublic,
             responses={**_NOT_FOUND, **_CONFLICT})
def cancel_job(job: JobDep, runner: RunnerDep, _: WriterDep) -> JobPublic:
    return _public(runner.cancel(job))
