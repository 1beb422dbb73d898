"""`POST /v1/chat/completions`: HTTP glue only; the logic is in `completions.py`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header
from fastapi.responses import Response, StreamingResponse
from medgo_common.errors import ErrorResponse
from medgo_common.schemas.openai import ChatCompletionRequest

from medgo_gateway.completions import ChatHandler, JsonResult, StreamResult
from medgo_gateway.deps import StateDep, require_role
from medgo_gateway.policy.auth import ApiKey, Role

router = APIRouter(prefix="/v1", tags=["chat"])

ChatCaller = Annotated[ApiKey, Depends(require_role(Role.clinician, Role.api_client, Role.ops))]

_ERRORS = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}


class RelayResponse(StreamingResponse):
    """A stream that always releases its upstream stream and admission slot.

    Starlette stops iterating when the client disconnects, without closing the
    generator; `close()` in `finally` closes the upstream connection (vLLM then
    aborts the generation) whether the stream ended, failed or was abandoned.
    """

    def __init__(self, result: StreamResult) -> None:
        super().__init__(result.events, media_type="text/event-stream", headers=result.headers)
        self._close = result.close

    async def __call__(self, scope, receive, send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._close()


@router.post(
    "/chat/completions",
    responses={200: {"content": {"text/event-stream": {}}}, **_ERRORS},
)
async def create_chat_completion(
    body: ChatCompletionRequest,
    caller: ChatCaller,
    state: StateDep,
    x_medgo_conversation_id: Annotated[str | None, Header(max_length=128)] = None,
) -> Response:
    """OpenAI-compatible chat completion through MedGo's policies (JSON or SSE)."""
    result = await ChatHandler(state).handle(body, caller, x_medgo_conversation_id)
    if isinstance(result, JsonResult):
        return Response(result.body, media_type="application/json", headers=result.headers)
    return RelayResponse(result)
