"""`POST /v1/chat/completions`: HTTP glue only; the logic is in `completions.py`.

The route resolves its own arguments (`ChatRoute`): it is the gateway's hot path, and
FastAPI's generic resolver — the dependency tree, header parameters, the content type
read through `email.message` — cost ~0.45 ms CPU per request, about a seventh of the
gateway's whole cost per chat (bench/gateway.py; docs/benchmarks.md). The endpoint's
signature still declares the contract, so OpenAPI and /docs are unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from medgo_common.errors import ErrorResponse, MedgoError
from medgo_common.schemas.openai import ChatCompletionRequest
from pydantic import ValidationError
from starlette.routing import request_response

from medgo_gateway.completions import ChatHandler, JsonResult, StreamResult
from medgo_gateway.deps import StateDep, authorize, get_state, require_role
from medgo_gateway.policy.auth import ApiKey, Role

ROLES = (Role.clinician, Role.api_client, Role.ops)
CONVERSATION_HEADER = "x-medgo-conversation-id"
CONVERSATION_MAX_CHARS = 128

ChatCaller = Annotated[ApiKey, Depends(require_role(*ROLES))]

_ERRORS = {
    status: {"model": ErrorResponse}
    for status in (400, 401, 403, 404, 413, 429, 502, 503, 504)
}


class ChatRoute(APIRoute):
    """Resolves what `create_chat_completion` declares, by hand and in its order.

    The same answers as FastAPI's resolver, with two differences: the caller is
    authenticated before the body is read, so an unauthenticated request gets 401
    whatever it sent (FastAPI parses the JSON first, and answered 400 to bad JSON); and
    a body not sent as JSON is 400 `invalid_content_type`, which says so (FastAPI
    validated its bytes as the model: "Input should be a valid dictionary").
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        # Starlette's request/response adapter instead of FastAPI's copy of it: nothing
        # here is a dependency with `yield`, so FastAPI's two exit stacks per request
        # would hold nothing.
        self.app = request_response(self.get_route_handler())

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handle(request: Request) -> Response:
            state = await get_state(request)
            caller = await authorize(state, request, ROLES)  # 401 / 403
            body = await _body(request)  # 400
            return await endpoint(body=body, caller=caller, state=state,
                                  x_medgo_conversation_id=_conversation(request))

        return handle


async def _body(request: Request) -> ChatCompletionRequest:
    raw = await request.body()  # first: a body over the limit is 413, whatever its type
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if not (media == "application/json"
            or (media.startswith("application/") and media.endswith("+json"))):
        raise MedgoError(400, "send the request as JSON: `Content-Type: application/json`",
                         code="invalid_content_type")
    try:
        return ChatCompletionRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError([
            {**error, "loc": ("body", *error["loc"])}
            for error in exc.errors(include_url=False, include_context=False)
        ]) from None


def _conversation(request: Request) -> str | None:
    value = request.headers.get(CONVERSATION_HEADER)
    if value is not None and len(value) > CONVERSATION_MAX_CHARS:
        raise RequestValidationError([{
            "type": "string_too_long", "loc": ("header", CONVERSATION_HEADER),
            "msg": f"String should have at most {CONVERSATION_MAX_CHARS} characters",
        }])
    return value


# The chat route only: `ChatRoute` resolves that one endpoint's arguments.
router = APIRouter(prefix="/v1", tags=["chat"], route_class=ChatRoute)


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
    x_medgo_conversation_id: Annotated[
        str | None, Header(max_length=CONVERSATION_MAX_CHARS)] = None,
) -> Response:
    """OpenAI-compatible chat completion through MedGo's policies (JSON or SSE)."""
    result = await ChatHandler(state).handle(body, caller, x_medgo_conversation_id)
    if isinstance(result, JsonResult):
        return Response(result.body, media_type="application/json", headers=result.headers)
    return RelayResponse(result)
