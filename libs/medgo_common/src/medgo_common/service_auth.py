"""Service-to-service authentication: named bearer tokens.

The feedback store and the trainer's job API admit only known services (gateway,
trainer, ops). Tokens are configured as `name=token,name=token`; the caller's name
is what gets audited (e.g. who exported data), never the token.

`ServiceCallerDep` is the one FastAPI dependency both services mount their `/v1`
routers behind: it reads the tokens from the app's settings (`app.state.settings.
service_tokens`, set by each app factory), so the check is written once.

Least privilege: a service may also give each caller a set of *scopes*
(`app.state.settings.service_scopes`, caller name → scope names) and guard each route
with `require_scope("exports:read")`. A valid token whose caller lacks the scope gets
403 naming the missing scope, so a leaked gateway token cannot export conversations
and a trainer token cannot write ratings. `ALL_SCOPES` (`*`) grants every scope (ops).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Collection, Coroutine, Mapping
from typing import Annotated, Any

from fastapi import Depends, Request
from pydantic import SecretStr

from medgo_common.errors import MedgoError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
ALL_SCOPES = "*"


def parse_service_tokens(value: object) -> object:
    """Settings validator for `name=token,...`; a malformed entry is a start-up error."""
    if not isinstance(value, str):
        return value
    tokens: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in value.split(","))):
        name, sep, token = entry.partition("=")
        if not sep or not name.strip() or not token.strip():
            raise ValueError("expected `name=token` entries separated by commas")
        tokens[name.strip()] = token.strip()
    return tokens


def authenticate_service(authorization: str, tokens: Mapping[str, SecretStr]) -> str:
    """The calling service's name, or 401 when the bearer token is missing or unknown.

    Every configured token is compared in constant time, so the response time does
    not reveal which prefix matched.
    """
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MedgoError(
            401, "missing bearer token: send `Authorization: Bearer <service token>`",
            code="missing_token", headers=_CHALLENGE,
        )
    presented = token.strip().encode()
    caller = None
    for name, secret in tokens.items():
        if hmac.compare_digest(presented, secret.get_secret_value().encode()):
            caller = name
    if caller is None:
        raise MedgoError(401, "unknown service token", code="invalid_token", headers=_CHALLENGE)
    return caller


async def require_service_caller(request: Request) -> str:
    """The calling service's name, or 401 (`async`: no thread-pool hop for a compare)."""
    return authenticate_service(
        request.headers.get("authorization", ""), request.app.state.settings.service_tokens
    )


ServiceCallerDep = Annotated[str, Depends(require_service_caller)]


def scopes_validator(known: Collection[str]) -> Callable[[object], object]:
    """A settings validator for a caller → scopes mapping: every scope must be one of
    `known` (or `*`), so a typo is a start-up error rather than a silently closed route.
    """

    def _check(value: object) -> object:
        if not isinstance(value, Mapping):
            return value
        for caller, scopes in value.items():
            unknown = sorted(set(scopes) - set(known) - {ALL_SCOPES})
            if unknown:
                raise ValueError(
                    f"unknown scope(s) {', '.join(unknown)} for {caller!r}; "
                    f"known: {', '.join(sorted(known))} or {ALL_SCOPES}"
                )
        return value

    return _check


def check_scope(caller: str, scope: str, scopes: Mapping[str, Collection[str]]) -> None:
    """403 unless `caller` holds `scope` (or `*`); a caller with no entry holds none."""
    granted = scopes.get(caller, ())
    if scope not in granted and ALL_SCOPES not in granted:
        raise MedgoError(
            403, f"service {caller!r} lacks the scope {scope!r} this endpoint requires",
            code="insufficient_scope", param=scope,
        )


def require_scope(scope: str) -> Callable[[Request], Coroutine[Any, Any, str]]:
    """A route dependency: the caller's name once its token is valid (401 otherwise)
    and it holds `scope` (403 otherwise), e.g. `dependencies=[Depends(require_scope(
    "exports:read"))]`. The token check is the shared `ServiceCallerDep`, which FastAPI
    runs once per request however many dependencies name it."""

    async def _require(request: Request, caller: ServiceCallerDep) -> str:
        check_scope(caller, scope, request.app.state.settings.service_scopes)
        return caller

    _require.__name__ = f"require_scope_{scope}"
    return _require
