"""Ops-only routing control: the canary weight for a checkpoint rollout."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from medgo_common.errors import ErrorResponse
from pydantic import BaseModel, ConfigDict, Field

from medgo_gateway.deps import StateDep, require_role
from medgo_gateway.policy.auth import Role
from medgo_gateway.upstream import CANARY

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    dependencies=[Depends(require_role(Role.ops))],
    responses={s: {"model": ErrorResponse} for s in (401, 403)},
)


class RoutingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    canary_weight: float = Field(ge=0.0, le=1.0, description="share of conversations")


class RoutingOut(BaseModel):
    canary_configured: bool
    canary_weight: float


def _routing(state) -> RoutingOut:
    return RoutingOut(
        canary_configured=CANARY in state.upstream.urls,
        canary_weight=state.upstream.canary_weight,
    )


@router.get("/routing", response_model=RoutingOut)
async def get_routing(state: StateDep) -> RoutingOut:
    return _routing(state)


@router.put("/routing", response_model=RoutingOut, responses={409: {"model": ErrorResponse}})
async def set_routing(body: RoutingIn, state: StateDep) -> RoutingOut:
    """Change the canary weight (in memory; the configured weight returns on restart)."""
    state.upstream.set_canary_weight(body.canary_weight)
    return _routing(state)
