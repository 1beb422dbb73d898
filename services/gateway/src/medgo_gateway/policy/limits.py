"""Chat-request bounds: messages, characters, max_tokens.

Policy from settings, applied after the schema accepted the request. The body-size
limit that runs before any parsing is the shared `medgo_common.bodylimit` middleware.
"""

from __future__ import annotations

from medgo_common.errors import MedgoError
from medgo_common.schemas.openai import ChatCompletionRequest


def check_chat_request(
    req: ChatCompletionRequest, *, max_messages: int, max_chars: int, max_tokens: int
) -> None:
    """Raise 400 with the offending parameter when a bound is exceeded."""
    if len(req.messages) > max_messages:
        raise MedgoError(
            400, f"at most {max_messages} messages are allowed", param="messages",
            code="too_many_messages",
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
