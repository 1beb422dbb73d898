"""Chat-request bounds and allowlist: parameters, content parts, messages, characters,
max_tokens.

Policy from settings, applied after the schema accepted the request. The body-size
limit that runs before any parsing is the shared `medgo_common.bodylimit` middleware.
"""

from __future__ import annotations

from medgo_common.errors import MedgoError
from medgo_common.schemas.openai import ChatCompletionRequest

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
