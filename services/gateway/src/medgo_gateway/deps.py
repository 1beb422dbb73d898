"""Request dependencies as named types: who is calling, and may they do this.

All are `async def` although none awaits: FastAPI runs plain `def` dependencies
in its thread pool, which would cost every request several thread hops.

Every `/v1` and `/admin` route depends on `CallerDep` (routes are closed unless they
ask for nothing, which only the health router and the chat page's static files do);
`require_role(...)` stacks on it. A caller is an API key or a chat-page session of one.
The bearer scheme is declared through FastAPI's `HTTPBearer`, so the OpenAPI schema
documents it and schemathesis can send keys.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from medgo_common.errors import MedgoError

from medgo_gateway.policy.auth import ApiKey, Role
from medgo_gateway.policy.session import SESSION_PREFIX, SessionError
from medgo_gateway.state import GatewayState

_bearer = HTTPBearer(auto_error=False, description="MedGo API key (`mg-...`)")


async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


StateDep = Annotated[GatewayState, Depends(get_state)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def get_caller(state: StateDep, credentials: CredentialsDep) -> ApiKey:
    """The key behind the bearer token: an API key, or a chat-page session of one."""
    if credentials is None or not credentials.credentials:
        state.metrics.reject("unauthenticated")
        raise MedgoError(
            401, "missing API key: send `Authorization: Bearer <key>`", code="missing_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = credentials.credentials
    if token.startswith(SESSION_PREFIX):
        return _session_caller(state, token)
    caller = state.keys.lookup(token)
    if caller is None:
        state.metrics.reject("unauthenticated")
        raise MedgoError(
            401, "invalid API key", code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"}
        )
    return caller


def _session_caller(state: GatewayState, token: str) -> ApiKey:
    try:
        session = state.sessions.verify(token)
    except SessionError as exc:
        state.metrics.reject("unauthenticated")
        code = "session_expired" if exc.expired else "invalid_session"
        raise MedgoError(401, str(exc), code=code,
                         headers={"WWW-Authenticate": "Bearer"}) from None
    caller = state.keys.by_id(session.key_id)
    if caller is None:  # the key was removed: its sessions end with it
        state.metrics.reject("unauthenticated")
        raise MedgoError(401, "the key of this session was revoked", code="invalid_session",
                         headers={"WWW-Authenticate": "Bearer"})
    return caller


CallerDep = Annotated[ApiKey, Depends(get_caller)]


def require_role(*roles: Role):
    """A dependency admitting only callers whose key has one of `roles` (else 403)."""
    allowed = ", ".join(r.value for r in roles)

    async def check(caller: CallerDep, state: StateDep) -> ApiKey:
        if caller.role not in roles:
            state.metrics.reject("forbidden")
            raise MedgoError(
                403, f"this endpoint needs the role: {allowed}", code="insufficient_role"
            )
        return caller

    return check
