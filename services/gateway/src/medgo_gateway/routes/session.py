"""`/v1/sessions`: trade an API key for a short-lived chat-page session, and end it.

`POST` signs in with the key; `DELETE` signs out with the session itself, ending it on
every gateway replica at once (`policy/revocation.py`), not just in the browser tab.
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from medgo_common.errors import ErrorResponse, MedgoError
from pydantic import BaseModel

from medgo_gateway.deps import CallerDep, CredentialsDep, SessionDep, StateDep
from medgo_gateway.policy.auth import Role
from medgo_gateway.policy.session import SESSION_PREFIX

router = APIRouter(prefix="/v1", tags=["sessions"])

# What a revocation answers: 204 when every replica refuses the session now, 202 when
# Redis is down and this replica keeps it until Redis answers (refused meanwhile).
REVOKED_RESPONSES: dict[int | str, dict] = {
    204: {"description": "ended on every replica"},
    202: {"description": "the shared store is down: kept by this replica and shared when "
                         "it answers; every replica refuses sessions meanwhile"},
}


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    role: Role
    department: str | None = None


def revoked(shared: bool) -> Response:
    """204, or 202 `{"status": "queued"}` when the revocation waits for Redis."""
    if shared:
        return Response(status_code=204)
    return JSONResponse({"status": "queued"}, status_code=202)


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    responses={s: {"model": ErrorResponse} for s in (401, 403, 503)},
)
async def create_session(
    caller: CallerDep, credentials: CredentialsDep, state: StateDep
) -> SessionOut:
    """Sign in with an API key; the session has the key's role and shares its quotas."""
    if credentials is not None and credentials.credentials.startswith(SESSION_PREFIX):
        # A session renewing itself would never expire: signing in needs the key.
        raise MedgoError(403, "a session cannot start another session: sign in with the key",
                         code="key_required")
    await state.revocations.ready()  # 503 while sessions could not be checked
    session = state.sessions.issue(caller.id)
    return SessionOut(
        token=session.token,
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        role=caller.role,
        department=caller.department,
    )


@router.delete(
    "/sessions",
    status_code=204,
    response_class=Response,
    responses={**REVOKED_RESPONSES, **{s: {"model": ErrorResponse} for s in (400, 401)}},
)
async def end_session(session: SessionDep, state: StateDep) -> Response:
    """Sign out: the session token in `Authorization` is refused by every replica from now
    on (idempotent: ending an ended session is 204 again)."""
    return revoked(await state.revocations.end_session(session))
