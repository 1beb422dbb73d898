"""`POST /v1/sessions`: trade an API key for a short-lived chat-page session."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter
from medgo_common.errors import ErrorResponse, MedgoError
from pydantic import BaseModel

from medgo_gateway.deps import CallerDep, CredentialsDep, StateDep
from medgo_gateway.policy.auth import Role
from medgo_gateway.policy.session import SESSION_PREFIX

router = APIRouter(prefix="/v1", tags=["sessions"])


class SessionOut(BaseModel):
    token: str
    expires_at: datetime
    role: Role
    department: str | None = None


@router.post(
    "/sessions",
    status_code=201,
    response_model=SessionOut,
    responses={s: {"model": ErrorResponse} for s in (401, 403)},
)
async def create_session(
    caller: CallerDep, credentials: CredentialsDep, state: StateDep
) -> SessionOut:
    """Sign in with an API key; the session has the key's role and shares its quotas."""
    if credentials is not None and credentials.credentials.startswith(SESSION_PREFIX):
        # A session renewing itself would never expire: signing in needs the key.
        raise MedgoError(403, "a session cannot start another session: sign in with the key",
                         code="key_required")
    session = state.sessions.issue(caller.id)
    return SessionOut(
        token=session.token,
        expires_at=datetime.fromtimestamp(session.expires_at, UTC),
        role=caller.role,
        department=caller.department,
    )
