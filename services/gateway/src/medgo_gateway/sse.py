"""Server-sent events: relaying vLLM's stream unchanged while assembling the answer.

vLLM writes one `data: {...}\\n\\n` event per chunk. The relay forwards each complete
event byte for byte and reads a copy to assemble the answer for the interaction
record (content, finish reason, token usage). To always get usage, the gateway asks
vLLM for it (`stream_options.include_usage`); if the client did not ask, the one
usage-only event is held back, so the client sees exactly the stream it requested.

Reading costs CPU per chunk, so only what must be known at once is parsed at once:
events up to the first token (the time-to-first-token metric) and events that carry
`"usage"` (the only ones that may be held back). After the first token, a read that
ends on an event boundary and has no `"usage"` in it — nearly every read — is kept as
it came, with no split and no parse; everything kept is parsed together, in one
`orjson.loads`, when the answer is complete (bench/gateway.py, streamed; orjson takes
~1 µs less per event than the standard library's json on vLLM's chunks).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import orjson

DONE = b"data: [DONE]\n\n"
_SEP = b"\n\n"
# The one key whose events may be held back. A JSON string that contains the word keeps
# its quotes escaped (`\\"usage\\"`), so an event without these bytes has no usage key.
_USAGE_KEY = b'"usage"'


def event(payload: dict) -> bytes:
    return b"data: " + json.dumps(payload, ensure_ascii=False).encode("utf-8") + b"\n\n"


@dataclass
class StreamAssembler:
    """Feed raw upstream bytes; get back the bytes to forward.

    The answer (`text`, `finish_reason`, token counts) is complete once `done`.
    """

    forward_usage: bool
    content: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    first_token_seen: bool = False
    _done: bool = False
    _buffer: bytes = b""
    _pending: list[bytes] = field(default_factory=list)  # whole events, not parsed yet

    def feed(self, data: bytes) -> bytes:
        if (self.first_token_seen and not self._buffer and data.endswith(_SEP)
                and _USAGE_KEY not in data):
            self._pending.append(data)  # the usual read: forwarded as is, parsed later
            return data
        buffer = self._buffer + data if self._buffer else data
        end = buffer.rfind(_SEP)
        if end < 0:
            self._buffer = buffer
            return b""
        complete, self._buffer = buffer[: end + 2], buffer[end + 2 :]
        events = complete.split(_SEP)[:-1]
        kept = [raw for raw in events if self._read(raw)]
        if len(kept) == len(events):
            return complete  # the usual case: every event, byte for byte
        return b"".join(raw + _SEP for raw in kept)

    def _read(self, raw: bytes) -> bool:
        """Take note of one event (without its blank line); False if it must not be
        forwarded."""
        if self.first_token_seen and _USAGE_KEY not in raw:
            self._pending.append(raw + _SEP)
            return True
        self._settle()  # in order: what came before this event counts first
        data = _data(raw)
        if data is None:
            return True
        if data == b"[DONE]":
            self._done = True
            return True
        try:
            chunk = orjson.loads(data)
        except ValueError:
            return True
        return self._note(chunk)

    def _settle(self) -> None:
        """Parse the events kept as bytes, all in one `orjson.loads`."""
        if not self._pending:
            return
        events, self._pending = b"".join(self._pending).split(_SEP), []
        pending = [data for data in map(_data, events) if data is not None]
        if b"[DONE]" in pending:
            self._done = True
            pending = [data for data in pending if data != b"[DONE]"]
        if not pending:
            return
        try:
            chunks = orjson.loads(b"[" + b",".join(pending) + b"]")
        except ValueError:
            chunks = None
        if chunks is None or len(chunks) != len(pending):  # a bad event: one at a time
            chunks = []
            for data in pending:
                try:
                    chunks.append(orjson.loads(data))
                except ValueError:
                    continue
        for chunk in chunks:
            self._note(chunk)

    def _note(self, chunk: object) -> bool:
        """Content, finish reason and usage of one parsed event; False to hold it back."""
        if not isinstance(chunk, dict):
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
    def done(self) -> bool:
        """`[DONE]` came: the answer is complete."""
        self._settle()
        return self._done

    @property
    def text(self) -> str:
        self._settle()
        return "".join(self.content)


def _data(raw: bytes) -> bytes | None:
    """The payload of one `data:` event; None for comments and blank lines."""
    line = raw.strip()
    return line[5:].strip() if line.startswith(b"data:") else None
