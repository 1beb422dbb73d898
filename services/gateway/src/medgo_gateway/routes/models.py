"""`GET /v1/models`: the one public model name, and the checkpoint behind it."""

from __future__ import annotations

from fastapi import APIRouter
from medgo_common.schemas.openai import ModelCard, ModelList
from medgo_common.schemas.serving import SERVED_MODEL_NAME

from medgo_gateway.deps import CallerDep, StateDep

router = APIRouter(prefix="/v1", tags=["models"])


@router.get("/models", response_model=ModelList)
async def list_models(_: CallerDep, state: StateDep) -> ModelList:
    """Clients ask for `medgo`; `root` names the stable checkpoint that answers."""
    target = state.upstream.stable_target()
    return ModelList(data=[ModelCard(id=SERVED_MODEL_NAME, root=target.checkpoint)])
