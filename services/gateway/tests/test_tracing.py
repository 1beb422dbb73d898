"""Traces: the gateway's request span reaches a real OTLP/HTTP receiver, its trace id is
stored on the interaction in the real feedback database, its `traceparent` is what goes
upstream, and no prompt text is ever a span attribute."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from medgo_common.tracing import configure_tracing, current_trace_id, tracer_for
from medgo_gateway.app import build_upstream
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from opentelemetry.sdk.trace import TracerProvider

MODEL_TIMEOUT_S = 60
PROMPT = "患者张三，电话13812345678，头痛三天，怎么办？"


class OtlpReceiver:
    """A real OTLP/HTTP endpoint on loopback: decodes every POST /v1/traces body."""

    def __init__(self) -> None:
        self.spans: list[tuple[dict, Span]] = []  # (resource attributes, span)
        self.paths: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                request = ExportTraceServiceRequest.FromString(body)
                for resource_spans in request.resource_spans:
                    resource = _attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        receiver.spans += [(resource, s) for s in scope_spans.spans]
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args) -> None:  # keep the test output clean
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def _attributes(attributes) -> dict:
    return {a.key: getattr(a.value, a.value.WhichOneof("value")) for a in attributes}


@pytest.fixture
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.server.shutdown()
        receiver.server.server_close()
        thread.join(timeout=10)


def test_chat_span_reaches_the_collector_and_its_trace_id_is_on_the_record(
    make_settings, serve, vllm_server, feedback, keys, wait, otlp_receiver
):
    feedback.start()
    settings = make_settings(
        inference_url=vllm_server, feedback_url=feedback.url, otlp_endpoint=otlp_receiver.url
    )
    with serve(settings) as url:
        r = httpx.post(
            url + "/v1/chat/completions", timeout=MODEL_TIMEOUT_S, headers=keys.auth("clinician"),
            json={"model": "medgo", "messages": [{"role": "user", "content": PROMPT}],
                  "max_tokens": 4},
        )
        assert r.status_code == 200
        interaction_id = r.headers["x-medgo-interaction-id"]
        feedback.interaction(interaction_id)
    # The gateway has stopped: its provider's shutdown flushed the batched spans.
    wait(lambda: otlp_receiver.spans, 10, "the span to reach the receiver")
    assert set(otlp_receiver.paths) == {"/v1/traces"}

    with contextlib.closing(sqlite3.connect(feedback.db)) as db:
        (stored,) = db.execute(
            "SELECT trace_id FROM interactions WHERE id = ?", (uuid.UUID(interaction_id).hex,)
        ).fetchone()
    assert stored is not None and len(stored) == 32
    assert feedback.get(f"/v1/interactions/{interaction_id}").json()["trace_id"] == stored

    chats = [(res, s) for res, s in otlp_receiver.spans if s.name == "chat.completions"]
    assert len(chats) == 1
    resource, span = chats[0]
    assert span.trace_id.hex() == stored
    assert resource["service.name"] == "medgo-gateway"
    attributes = _attributes(span.attributes)
    assert attributes["medgo.checkpoint"] == "medgo-tiny-sft"
    assert attributes["medgo.stream"] is False
    assert attributes["http.response.status_code"] == 200
    for res, s in otlp_receiver.spans:
        values = " ".join(str(v) for v in [*_attributes(s.attributes).values(), *res.values()])
        for secret in ("张三", "13812345678", "头痛", "[电话]"):
            assert secret not in values


def test_upstream_requests_carry_the_request_spans_traceparent(make_settings):
    provider = TracerProvider()  # no exporter: only the context matters here
    settings = make_settings(inference_api_key="sk-inference")
    upstream = build_upstream(settings, client=None)  # headers only: no request is sent
    try:
        assert "traceparent" not in upstream.request_headers()  # no span, no header
        with tracer_for(provider, "test").start_as_current_span("chat.completions") as span:
            headers = upstream.request_headers()
            trace_id = format(span.get_span_context().trace_id, "032x")
        assert headers["Authorization"] == "Bearer sk-inference"
        version, sent_trace_id, parent_id, flags = headers["traceparent"].split("-")
        assert (version, sent_trace_id) == ("00", trace_id)
        assert int(flags, 16) & 0x01  # sampled: vLLM records its part of the trace
        assert parent_id == format(span.get_span_context().span_id, "016x")
        assert "traceparent" not in upstream.request_headers()  # a fresh dict every call
    finally:
        provider.shutdown()


def test_tracing_off_changes_nothing():
    assert configure_tracing("medgo-gateway", "") is None
    with tracer_for(None, "test").start_as_current_span("chat.completions"):
        assert current_trace_id() is None
