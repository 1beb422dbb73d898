"""Service-to-service authentication: named bearer tokens.

The feedback store and the trainer's job API admit only known services (gateway,
trainer, ops). Tokens are configured as `name=token,name=token`; the caller's name
is what gets audited (e.g. who exported data), never the token.

`ServiceCallerDep` is the one FastAPI dependency both services mount their `/v1`
routers behind: it reads the tokens from the app's settings (`app.state.settings.
service_tokens`, set by each app factory), so the check is written once.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Annotated

from fastapi import Depends, Request
from pydantic import SecretStr

from medgo_common.errors import MedgoError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


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
