"""Request dependencies as named types: the caller (service-token auth) and the runner.

Auth denies by default: with no `MEDGO_TRAINER_SERVICE_TOKENS` configured nobody gets
in (the same `Authorization: Bearer <token>` scheme as the feedback service).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from medgo_common.errors import MedgoError

from medgo_trainer.api.runner import JobRunner
from medgo_trainer.api.store import JobRow
from medgo_trainer.settings import TrainerSettings

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def get_settings(request: Request) -> TrainerSettings:
    return request.app.state.settings


def get_runner(request: Request) -> JobRunner:
    return request.app.state.runner


def require_caller(
    request: Request, settings: Annotated[TrainerSettings, Depends(get_settings)]
) -> str:
    """The calling service's name, or 401 when the bearer token is missing or unknown."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MedgoError(401, "missing bearer token: send `Authorization: Bearer <token>`",
                         code="missing_token", headers=_CHALLENGE)
    presented = token.strip().encode()
    for name, secret in settings.service_tokens.items():
        if hmac.compare_digest(presented, secret.get_secret_value().encode()):
            return name
    raise MedgoError(401, "unknown service token", code="invalid_token", headers=_CHALLENGE)


CallerDep = Annotated[str, Depends(require_caller)]
RunnerDep = Annotated[JobRunner, Depends(get_runner)]


def get_job(job_id: str, runner: RunnerDep, _: CallerDep) -> JobRow:
    """The job named in the path, status refreshed, or 404."""
    job = runner.store.get(job_id=job_id)
    if job is None:
        raise MedgoError(404, f"no job {job_id!r}", code="job_not_found", param="job_id")
    return runner.refresh(job)


JobDep = Annotated[JobRow, Depends(get_job)]
