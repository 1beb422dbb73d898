"""Request limits: body size (pure ASGI, before parsing) and chat-request bounds.

The body limit runs before FastAPI reads JSON, so an oversized upload is refused
without being parsed. The chat bounds (messages, characters, max_tokens) are policy
from settings, applied after the schema accepted the request.
"""

from __future__ import annotations

from medgo_common.errors import MedgoError, error_response
from medgo_common.schemas.openai import ChatCompletionRequest


class BodySizeLimit:
    """Answers 413 for bodies over `max_bytes`: by Content-Length, or by counting."""

    def __init__(self, app, *, max_bytes: int, on_reject=None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self._on_reject = on_reject or (lambda _reason: None)

    def _too_large(self):
        self._on_reject("body_too_large")
        return error_response(
            413, f"request body exceeds {self.max_bytes} bytes", code="body_too_large"
        )

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                length = value
                break
        if length is not None:
            if not length.isdigit() or int(length) > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        # No Content-Length (chunked upload): read it here, bounded, then replay it.
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._too_large()(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)


# OpenAI chat parameters the product supports, beyond the typed ones in the schema:
# sampling controls and the log-probabilities the evaluation client reads. Anything
# else (vLLM's min_tokens/ignore_eos, priority, grammars, chat_template_kwargs, tools)
# is refused, unless an operator lists it in MEDGO_GATEWAY_PASSTHROUGH_PARAMS.
SUPPORTED_PARAMS = frozenset(
    {"stop", "seed", "presence_penalty", "frequency_penalty", "logprobs", "top_logprobs"}
)
# Message fields besides role and content: OpenAI's optional participant name.
SUPPORTED_MESSAGE_FIELDS = frozenset({"name"})


def _unsupported(param: str) -> MedgoError:
    return MedgoError(
        400, f"parameter {param!r} is not supported by this service", param=param,
        code="unsupported_parameter",
    )


def check_parameters(req: ChatCompletionRequest, passthrough: frozenset[str]) -> None:
    """400 naming the first parameter that is neither supported nor allowed through."""
    for name in req.model_extra or {}:
        if name not in SUPPORTED_PARAMS and name not in passthrough:
            raise _unsupported(name)
    if req.stream_options is not None:
        for name in req.stream_options.model_extra or {}:
            raise _unsupported(f"stream_options.{name}")
    for i, message in enumerate(req.messages):
        for name in message.model_extra or {}:
            if name not in SUPPORTED_MESSAGE_FIELDS:
                raise _unsupported(f"messages.{i}.{name}")


def check_chat_request(
    req: ChatCompletionRequest, *, max_messages: int, max_chars: int, max_tokens: int,
    passthrough: frozenset[str] = frozenset(),
) -> None:
    """Raise 400 with the offending parameter when a bound is exceeded."""
    check_parameters(req, passthrough)
    if len(req.messages) > max_messages:
        raise MedgoError(
            400, f"at most {max_messages} messages are allowed", param="messages",
            code="too_many_messages",
        )
    for i, message in enumerate(req.messages):
        for j, part in enumerate(message.content if isinstance(message.content, list) else []):
            # Other part types are neither counted, screened nor recorded: refuse them.
            if part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise MedgoError(
                    400, "only content parts of type 'text' with a string 'text' are accepted",
                    param=f"messages.{i}.content.{j}.type", code="unsupported_content_part",
                )
    chars = sum(len(m.text()) for m in req.messages)
    if chars > max_chars:
        raise MedgoError(
            400, f"messages hold {chars} characters; at most {max_chars} are allowed",
            param="messages", code="too_many_characters",
        )
    for name in ("max_tokens", "max_completion_tokens"):
        value = getattr(req, name)
        if value is not None and value > max_tokens:
            raise MedgoError(
                400, f"{name} must be at most {max_tokens}", param=name, code="invalid_value"
            )
