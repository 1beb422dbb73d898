"""Request dependencies as named types: the caller (service-token auth) and the runner.

Auth denies by default: with no `MEDGO_TRAINER_SERVICE_TOKENS` configured nobody gets
in (the same `Authorization: Bearer <token>` scheme as the feedback service), and a
valid token opens only the routes its scopes allow (`scopes.py`, 403 otherwise).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from medgo_common.errors import MedgoError
from medgo_common.service_auth import require_scope

from medgo_trainer.api.runner import JobRunner
from medgo_trainer.api.scopes import JOBS_READ, JOBS_WRITE
from medgo_trainer.api.store import JobRow
from medgo_trainer.settings import TrainerSettings


def get_settings(request: Request) -> TrainerSettings:
    return request.app.state.settings


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


RunnerDep = Annotated[JobRunner, Depends(get_runner)]
ReaderDep = Annotated[str, Depends(require_scope(JOBS_READ))]  # the caller's name
WriterDep = Annotated[str, Depends(require_scope(JOBS_WRITE))]


def get_job(job_id: str, runner: RunnerDep, _: ReaderDep) -> JobRow:
    """The job named in the path, status refreshed, or 404."""
    job = runner.store.get(job_id=job_id)
    if job is None:
        raise MedgoError(404, f"no job {job_id!r}", code="job_not_found", param="job_id")
    return runner.refresh(job)


JobDep = Annotated[JobRow, Depends(get_job)]

__all__ = ["JobDep", "ReaderDep", "RunnerDep", "WriterDep", "get_settings"]
