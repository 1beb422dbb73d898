"""Ops-only view of routing: the serving manifest in force and every replica's state.

There is no `PUT`: the canary weight lives in the serving manifest (the ConfigMap every
gateway and inference replica mounts), which ops change with kubectl (docs/operations.md,
"Adapter rollout and rollback"). A weight set through one gateway replica's API would
reach one replica of several and be lost on its restart.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from medgo_common.errors import ErrorResponse
from pydantic import BaseModel

from medgo_gateway.deps import StateDep, require_role
from medgo_gateway.policy.auth import Role

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
