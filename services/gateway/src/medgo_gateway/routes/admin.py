"""Ops-only endpoints: routing as it stands, and ending a key's sessions.

There is no `PUT` for routing: the canary weight lives in the serving manifest (the
ConfigMap every gateway and inference replica mounts), which ops change with kubectl
(docs/operations.md, "Adapter rollout and rollback"). A weight set through one gateway
replica's API would reach one replica of several and be lost on its restart.

Ending sessions is different: its record lives in the shared store every replica
reads (`policy/revocation.py`), so one call ends a key's sessions everywhere, before a
changed keys file has reached every pod.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response
from medgo_common.errors import ErrorResponse
from pydantic import BaseModel

from medgo_gateway.deps import StateDep, require_role
from medgo_gateway.policy.auth import KEY_ID_PATTERN, Role
from medgo_gateway.routes.session import REVOKED_RESPONSES, revoked

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_role(Role.ops))],
    responses={s: {"model": ErrorResponse} for s in (401, 403)},
)


class RoutingOut(BaseModel):
    manifest: dict[str, Any]
    pools: dict[str, list[dict[str, Any]]]
    base_canary_weight: float | None
    serving: bool  # a replica serves the stable adapter (this gateway is ready)


@router.get("/routing", response_model=RoutingOut)
async def get_routing(state: StateDep) -> RoutingOut:
    """The manifest this gateway routes by, and what each replica serves right now."""
    return RoutingOut(**state.upstream.describe(), serving=state.upstream.readiness() is None)


@router.delete(
    "/keys/{key_id}/sessions",
    status_code=204,
    response_class=Response,
    responses={**REVOKED_RESPONSES, 400: {"model": ErrorResponse}},
)
async def end_key_sessions(
    key_id: Annotated[str, Path(pattern=rf"^{KEY_ID_PATTERN}$", description="the key's id")],
    state: StateDep,
) -> Response:
    """End every session issued so far for a key (a lost tablet, a key being removed);
    the key itself keeps working until it leaves the keys file."""
    return revoked(await state.revocations.end_key(key_id, reason="ops"))
