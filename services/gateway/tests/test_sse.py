"""The stream relay's reader: bytes forwarded unchanged, the answer assembled.

The events are shaped like vLLM's (one `data:` line per chunk, a usage-only chunk
before `[DONE]` when `stream_options.include_usage` is set); the relay against the
real vLLM is covered by tests/routes/test_chat.py.
"""

from __future__ import annotations

import json

import pytest
from medgo_gateway.sse import StreamAssembler


def _chunk(**fields) -> bytes:
    body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "medgo-tiny-sft",
            **fields}
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\n\n"


PIECES = ["高血压", "患者应", '低盐"usage"饮食', "。"]
CONTENT = [
    _chunk(choices=[{"index": 0, "delta": {"role": "assistant", "content": ""}}]),
    *(_chunk(choices=[{"index": 0, "delta": {"content": p}}]) for p in PIECES),
    _chunk(choices=[{"index": 0, "delta": {}, "finish_reason": "length"}]),
]
USAGE = _chunk(choices=[], usage={"prompt_tokens": 12, "completion_tokens": 4})
DONE = b"data: [DONE]\n\n"
STREAM = b"".join([*CONTENT, USAGE, DONE])


def _relay(assembler: StreamAssembler, stream: bytes, cut: int) -> bytes:
    """Feed `stream` in pieces of `cut` bytes (a network read ends anywhere)."""
    return b"".join(assembler.feed(stream[i:i + cut]) for i in range(0, len(stream), cut))


@pytest.mark.parametrize("cut", [1, 7, 64, len(STREAM)])
def test_forwards_every_byte_and_assembles_the_answer(cut):
    assembler = StreamAssembler(forward_usage=True)
    assert _relay(assembler, STREAM, cut) == STREAM
    assert assembler.done and assembler.first_token_seen
    assert assembler.text == "".join(PIECES)
    assert assembler.finish_reason == "length"
    assert (assembler.prompt_tokens, assembler.completion_tokens) == (12, 4)


@pytest.mark.parametrize("cut", [1, 64, len(STREAM)])
def test_usage_event_held_back_when_the_client_did_not_ask(cut):
    assembler = StreamAssembler(forward_usage=False)
    assert _relay(assembler, STREAM, cut) == b"".join([*CONTENT, DONE])
    assert (assembler.prompt_tokens, assembler.completion_tokens) == (12, 4)
    assert assembler.text == "".join(PIECES)


@pytest.mark.parametrize("forward_usage", [True, False])
def test_event_by_event_as_vllm_writes_them(forward_usage):
    """One read per event, the usual case: after the first token, reads are kept whole
    and parsed only at the end; the answer is the same."""
    assembler = StreamAssembler(forward_usage=forward_usage)
    out = [assembler.feed(e) for e in [*CONTENT, USAGE, DONE]]
    assert out == [*CONTENT, USAGE if forward_usage else b"", DONE]
    assert assembler.done
    assert assembler.text == "".join(PIECES)
    assert assembler.finish_reason == "length"
    assert (assembler.prompt_tokens, assembler.completion_tokens) == (12, 4)


def test_not_done_without_the_done_event():
    assembler = StreamAssembler(forward_usage=True)
    for e in CONTENT:
        assembler.feed(e)
    assert not assembler.done
    assert assembler.text == "".join(PIECES)  # what came so far


def test_first_token_is_seen_on_the_event_that_carries_it():
    assembler = StreamAssembler(forward_usage=True)
    assembler.feed(CONTENT[0])
    assert not assembler.first_token_seen  # the role-only chunk has no token
    assembler.feed(CONTENT[1])
    assert assembler.first_token_seen


def test_a_malformed_event_is_forwarded_and_the_rest_still_counts():
    bad = b"data: {not json\n\n"
    stream = b"".join([*CONTENT[:3], bad, *CONTENT[3:], DONE])
    assembler = StreamAssembler(forward_usage=True)
    assert assembler.feed(stream) == stream
    assert assembler.text == "".join(PIECES)
    assert assembler.finish_reason == "length"
