"""Server-sent events: relaying vLLM's stream unchanged while assembling the answer.

vLLM writes one `data: {...}\\n\\n` event per chunk. The relay forwards each complete
event byte for byte and reads a copy to assemble the answer for the interaction
record (content, finish reason, token usage). To always get usage, the gateway asks
vLLM for it (`stream_options.include_usage`); if the client did not ask, the one
usage-only event is held back, so the client sees exactly the stream it requested.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

DONE = b"data: [DONE]\n\n"


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"


@dataclass
class StreamAssembler:
    """Feed raw upstream bytes; get back the bytes to forward."""

    forward_usage: bool
    content: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    done: bool = False
    first_token_seen: bool = False
    _buffer: bytes = b""

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = []
        while True:
            end = self._buffer.find(b"\n\n")
            if end < 0:
                break
            raw, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            if self._read(raw):
                out.append(raw)
        return b"".join(out)

    def _read(self, raw: bytes) -> bool:
        """Take note of one event; False if it must not be forwarded."""
        line = raw.strip()
        if not line.startswith(b"data:"):
            return True
        data = line[5:].strip()
        if data == b"[DONE]":
            self.done = True
            return True
        try:
            chunk = json.loads(data)
        except ValueError:
            return True
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.completion_tokens = int(usage.get("completion_tokens") or 0)
        choices = chunk.get("choices") or []
        for choice in choices:
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.content.append(text)
                self.first_token_seen = True
            if choice.get("finish_reason"):
                self.finish_reason = choice["finish_reason"]
        return bool(choices) or self.forward_usage or not isinstance(usage, dict)

    @property
    def text(self) -> str:
        return "".join(self.content)
