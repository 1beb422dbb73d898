"""The chat-completions handler: policy, then the model, then the record.

Order matters and is the whole point of the gateway: bounds (400) → quota (429) →
safety (refusal, no model call) → PHI redaction of the prompt if configured (fail
closed) → routing → admission (503) → the model (504/503/502) → the record (redacted,
asynchronous, durable). The router in `routes/chat.py` only maps what this returns.

Tracing: one span per request around all of it (checkpoint, adapter, stream flag,
status; never prompt or answer text); its `traceparent` goes to vLLM with the request
and its trace id onto the record. A streamed answer's span ends when the stream opens.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson
from medgo_common.errors import MedgoError, error_body
from medgo_common.schemas.feedback import InteractionRecord
from medgo_common.schemas.openai import ChatCompletionRequest, ChatMessage
from medgo_common.schemas.serving import SERVED_MODEL_NAME
from medgo_common.tracing import current_trace_id
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from medgo_gateway import refusal
from medgo_gateway.deid import DeidentificationFailedError
from medgo_gateway.policy.auth import ApiKey
from medgo_gateway.policy.limits import check_chat_request
from medgo_gateway.sse import DONE, StreamAssembler, event
from medgo_gateway.state import GatewayState
from medgo_gateway.upstream import STREAM_ERRORS, Target

logger = logging.getLogger("medgo.gateway.chat")


@dataclass
class JsonResult:
    body: bytes
    headers: dict[str, str]


@dataclass
class StreamResult:
    events: AsyncIterator[bytes]
    headers: dict[str, str]
    close: Callable[[], Awaitable[None]]  # releases the upstream stream and the slot


def conversation_key(caller: ApiKey, req: ChatCompletionRequest, explicit: str | None) -> str:
    """Sticky routing key: the client's conversation id, else its opening messages."""
    if explicit:
        return f"{caller.id}:{explicit}"
    opening = [m.text() for m in req.messages if m.role in ("system", "user")][:2]
    digest = hashlib.sha256("\x00".join(opening).encode("utf-8")).hexdigest()
    return f"{caller.id}:{digest}"


class ChatHandler:
    def __init__(self, state: GatewayState) -> None:
        self.state = state

    # -- the request
    async def handle(
        self, req: ChatCompletionRequest, caller: ApiKey, conversation: str | None
    ) -> JsonResult | StreamResult:
        # No exception events or messages on the span: they may quote the request.
        with self.state.tracer.start_as_current_span(
            "chat.completions", kind=SpanKind.SERVER,
            attributes={"medgo.stream": bool(req.stream)},
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                result = await self._policed(req, caller, conversation)
            except MedgoError as exc:
                span.set_attribute("http.response.status_code", exc.status)
                span.set_status(Status(StatusCode.ERROR))
                raise
            except BaseException:
                span.set_status(Status(StatusCode.ERROR))
                raise
            span.set_attribute("http.response.status_code", 200)
            return result

    async def _policed(
        self, req: ChatCompletionRequest, caller: ApiKey, conversation: str | None
    ) -> JsonResult | StreamResult:
        s = self.state
        settings = s.settings
        check_chat_request(
            req, max_messages=settings.max_messages, max_chars=settings.max_chars,
            max_tokens=settings.max_tokens, passthrough=frozenset(settings.passthrough_params),
        )
        if req.model != SERVED_MODEL_NAME:
            raise MedgoError(
                404, f"model {req.model!r} does not exist; use {SERVED_MODEL_NAME!r}",
                param="model", code="model_not_found",
            )
        lease = await s.quotas.admit(caller)  # 429; holds a per-key in-flight slot
        try:
            result = await self._admitted(req, caller, conversation)
        except BaseException:
            await lease.release()
            raise
        if isinstance(result, StreamResult):
            return StreamResult(result.events, result.headers, lease.after(result.close))
        await lease.release()
        return result

    async def _admitted(
        self, req: ChatCompletionRequest, caller: ApiKey, conversation: str | None
    ) -> JsonResult | StreamResult:
        s = self.state
        settings = s.settings
        decision = s.safety.check(req.messages)
        if decision is not None:
            s.metrics.refusals.labels(category=str(decision.category)).inc()
            trace.get_current_span().set_attribute("medgo.refused", True)
            return self._refuse(req, decision.message)

        messages = req.messages
        redacted = None  # the prompt as redacted for the model: the record reuses it
        if settings.redact_prompts:
            messages = redacted = await self._deidentify_or_refuse(messages)
        target = await s.upstream.target(conversation_key(caller, req, conversation))
        span = trace.get_current_span()
        span.set_attribute("medgo.checkpoint", target.checkpoint)
        if target.model != SERVED_MODEL_NAME:
            span.set_attribute("medgo.adapter", target.model)
        trace_id = current_trace_id()
        payload = self._payload(req, target, messages)
        interaction_id = uuid.uuid4()
        headers = {
            "x-medgo-interaction-id": str(interaction_id),
            "x-medgo-checkpoint": target.checkpoint,
        }
        started = time.perf_counter()
        if req.stream:
            return await self._stream(req, caller, target, payload, headers, started,
                                      trace_id, redacted)
        async with s.admission.slot():
            raw = await s.upstream.complete(target, payload)
        answer = orjson.loads(raw)
        usage = answer.get("usage") or {}
        choice = (answer.get("choices") or [{}])[0]
        self._finish(
            req, caller, target, redacted, interaction_id=interaction_id, trace_id=trace_id,
            started=started, response=(choice.get("message") or {}).get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
        return JsonResult(raw, headers)  # vLLM's bytes, unchanged

    def _refuse(self, req: ChatCompletionRequest, text: str) -> JsonResult | StreamResult:
        if not req.stream:
            body = json.dumps(refusal.completion(req.model, text), ensure_ascii=False)
            return JsonResult(body.encode("utf-8"), {})
        include_usage = bool(req.stream_options and req.stream_options.include_usage)
        events = refusal.stream(req.model, text, include_usage=include_usage)

        async def emit() -> AsyncIterator[bytes]:
            for item in events:
                yield item

        async def nothing() -> None:
            return None

        return StreamResult(emit(), {}, nothing)

    async def _deidentify_or_refuse(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        try:
            return await self.state.deid.amessages(messages)
        except DeidentificationFailedError:
            raise MedgoError(
                503, "the prompt could not be de-identified; it was not sent",
                code="redaction_failed",
            ) from None

    def _payload(
        self, req: ChatCompletionRequest, target: Target, messages: list[ChatMessage]
    ) -> dict:
        payload = req.model_dump(exclude_unset=True, mode="json")
        payload["model"] = target.model
        if messages is not req.messages:
            payload["messages"] = [m.model_dump(exclude_none=True) for m in messages]
        if req.max_tokens is None and req.max_completion_tokens is None:
            payload["max_tokens"] = self.state.settings.default_max_tokens
        if req.stream:
            payload["stream_options"] = {**(payload.get("stream_options") or {}),
                                         "include_usage": True}
        return payload

    # -- streaming
    async def _stream(
        self, req: ChatCompletionRequest, caller: ApiKey, target: Target, payload: dict,
        headers: dict[str, str], started: float, trace_id: str | None,
        redacted: list[ChatMessage] | None,
    ) -> StreamResult:
        s = self.state
        await s.admission.acquire()
        try:
            response = await s.upstream.open_stream(target, payload)
        except BaseException:
            s.admission.release()
            raise
        closed = False

        async def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            try:
                await response.aclose()
            finally:
                s.admission.release()

        assembler = StreamAssembler(
            forward_usage=bool(req.stream_options and req.stream_options.include_usage)
        )
        interaction_id = uuid.UUID(headers["x-medgo-interaction-id"])

        async def relay() -> AsyncIterator[bytes]:
            try:
                async for data in response.chunks():
                    seen_before = assembler.first_token_seen
                    out = assembler.feed(data)
                    if assembler.first_token_seen and not seen_before:
                        s.metrics.ttft.labels(checkpoint=target.checkpoint).observe(
                            time.perf_counter() - started
                        )
                    if out:
                        yield out
            except STREAM_ERRORS as exc:
                # The 200 is already sent: report in-band, then end the stream properly.
                timeout = response.failed(exc)
                status = 504 if timeout else 502
                message = "the inference backend timed out" if timeout else "inference failed"
                yield event(error_body(status, message, code="upstream_error"))
                yield DONE
                return
            finally:
                await close()
            if assembler.done:
                self._finish(
                    req, caller, target, redacted, interaction_id=interaction_id,
                    trace_id=trace_id, started=started, response=assembler.text,
                    finish_reason=assembler.finish_reason,
                    prompt_tokens=assembler.prompt_tokens,
                    completion_tokens=assembler.completion_tokens,
                )

        return StreamResult(relay(), headers, close)

    # -- after the answer
    def _finish(
        self, req: ChatCompletionRequest, caller: ApiKey, target: Target,
        redacted: list[ChatMessage] | None, *,
        interaction_id: uuid.UUID, trace_id: str | None, started: float, response: str,
        finish_reason: str | None, prompt_tokens: int, completion_tokens: int,
    ) -> None:
        """Charge the quota now; redact and spool the record off the response path."""
        s = self.state
        s.quotas.charge_tokens(caller, prompt_tokens + completion_tokens)
        s.metrics.tokens.labels(target.checkpoint, "prompt").inc(prompt_tokens)
        s.metrics.tokens.labels(target.checkpoint, "completion").inc(completion_tokens)
        latency_ms = (time.perf_counter() - started) * 1000.0
        s.recorder.submit(
            functools.partial(
                self._record, req, caller, target, redacted, interaction_id=interaction_id,
                trace_id=trace_id, latency_ms=latency_ms, response=response,
                finish_reason=finish_reason, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        )

    def _record(
        self, req: ChatCompletionRequest, caller: ApiKey, target: Target,
        redacted: list[ChatMessage] | None, *,
        interaction_id: uuid.UUID, trace_id: str | None, latency_ms: float, response: str,
        finish_reason: str | None, prompt_tokens: int, completion_tokens: int,
    ) -> InteractionRecord | None:
        """The redacted record (runs in the spool's writer thread), or None (fail closed).

        `redacted`: the prompt already redacted for the model (`redact_prompts`), stored
        as is instead of being redacted a second time.
        """
        s = self.state
        try:
            messages, response = s.deid.record(req.messages, response, redacted=redacted)
            record = InteractionRecord(
                id=interaction_id,
                created_at=datetime.now(UTC),
                user_id=caller.id,
                department=caller.department,
                checkpoint_id=target.checkpoint,
                adapter=target.model if target.model != SERVED_MODEL_NAME else None,
                messages=messages,
                response=response,
                finish_reason=finish_reason,
                latency_ms=latency_ms,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                trace_id=trace_id,
            )
        except DeidentificationFailedError:
            logger.error("interaction not recorded: redaction failed (fail closed)")
            return None
        return record
