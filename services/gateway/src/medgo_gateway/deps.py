"""Request dependencies as named types: who is calling, and may they do this.

All are `async def` although none awaits: FastAPI runs plain `def` dependencies
in its thread pool, which would cost every request several thread hops.

Every `/v1` and `/admin` route depends on `CallerDep` (routes are closed unless they
ask for nothing, which only the health router and the chat page's static files do);
`require_role(...)` stacks on it. A caller is an API key or a chat-page session of one;
a session is asked of the shared store on every request (`policy/revocation.py`:
401 once signed out or its key removed, 503 while the store cannot answer). Sign-out
depends on `SessionDep` instead: a signed, unexpired session, revoked or not, so it
works while Redis is down and twice in a row. The bearer scheme is declared through
FastAPI's `HTTPBearer`, so the OpenAPI schema documents it and schemathesis can send
keys.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from medgo_common.errors import MedgoError

from medgo_gateway.policy.auth import ApiKey, Role
from medgo_gateway.policy.session import SESSION_PREFIX, Session, SessionError
from medgo_gateway.state import GatewayState

_bearer = HTTPBearer(auto_error=False, description="MedGo API key (`mg-...`)")


async def get_state(request: Request) -> GatewayState:
    return request.app.state.gateway


StateDep = Annotated[GatewayState, Depends(get_state)]
CredentialsDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _unauthenticated(state: GatewayState, message: str, code: str) -> MedgoError:
    state.metrics.reject("unauthenticated")
    return MedgoError(401, message, code=code, headers={"WWW-Authenticate": "Bearer"})


def _token(state: GatewayState, credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or not credentials.credentials:
        raise _unauthenticated(state, "missing API key: send `Authorization: Bearer <key>`",
                               "missing_api_key")
    return credentials.credentials



def _signed_session(state: GatewayState, token: str) -> Session:
    try:
        return state.sessions.verify(token)
    except SessionError as exc:
        code = "session_expired" if exc.expired else "invalid_session"
        raise _unauthenticated(state, str(exc), code) from None


async def get_caller(state: StateDep, credentials: CredentialsDep) -> ApiKey:
    """The key behind the bearer token: an API key, or a live chat-page session of one."""
    token = _token(state, credentials)
    if token.startswith(SESSION_PREFIX):
        session = _signed_session(state, token)
        caller = state.keys.by_id(session.key_id)
        await state.revocations.sync(state.keys)
        if caller is None:  # the key was removed: its sessions end with it
            raise _unauthenticated(state, "the key of this session was revoked",
                                   "invalid_session")
        await state.revocations.check(session)
        return caller
    caller = state.keys.lookup(token)
    await state.revocations.sync(state.keys)
    if caller is None:
        raise _unauthenticated(state, "invalid API key", "invalid_api_key")
    return caller


CallerDep = Annotated[ApiKey, Depends(get_caller)]


async def get_session(state: StateDep, credentials: CredentialsDep) -> Session:
    """The bearer's session, signed and unexpired (revoked or not): what sign-out ends."""
    token = _token(state, credentials)
    if not token.startswith(SESSION_PREFIX):
        await get_caller(state, credentials)  # 401 for an unknown key, as everywhere
        raise MedgoError(400, "this ends a chat-page session: send the session token "
                         "(`ms-...`), not the key", code="session_required")
    return _signed_session(state, token)


SessionDep = Annotated[Session, Depends(get_session)]


def check_role(state: GatewayState, caller: ApiKey, roles: tuple[Role, ...]) -> ApiKey:
    """`caller` if its key has one of `roles`, else 403."""
    if caller.role not in roles:
        state.metrics.reject("forbidden")
        allowed = ", ".join(r.value for r in roles)
        raise MedgoError(403, f"this endpoint needs the role: {allowed}",
                         code="insufficient_role")
    return caller


def require_role(*roles: Role):
    """A dependency admitting only callers whose key has one of `roles` (else 403)."""

    async def check(caller: CallerDep, state: StateDep) -> ApiKey:
        return check_role(state, caller, roles)

    return check


async def authorize(state: GatewayState, request: Request, roles: tuple[Role, ...]) -> ApiKey:
    """What a route depending on `require_role(*roles)` gets, resolved directly: for the
    chat route, which resolves its own arguments (`routes/chat.py`)."""
    return check_role(state, await get_caller(state, await _bearer(request)), roles)
