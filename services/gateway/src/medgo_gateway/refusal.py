"""A safety refusal dressed as a normal chat completion (JSON or SSE).

Clients (the OpenAI SDK, the chat page) then show the refusal like any answer,
without a special error path, and the model is never called.
"""

from __future__ import annotations

import time
import uuid

from medgo_gateway.sse import DONE, event


def _base(model: str, kind: str) -> dict:
    return {
        "id": f"chatcmpl-refusal-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
    }


def completion(model: str, text: str) -> dict:
    return {
        **_base(model, "chat.completion"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": "content_filter",
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }


def stream(model: str, text: str, *, include_usage: bool) -> list[bytes]:
    base = _base(model, "chat.completion.chunk")

    def chunk(delta: dict, finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return event({**base, "choices": [choice]})

    events = [
        chunk({"role": "assistant", "content": ""}, None),
        chunk({"content": text}, None),
        chunk({}, "content_filter"),
    ]
    if include_usage:
        usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        events.append(event({**base, "choices": [], "usage": usage}))
    events.append(DONE)
    return events
