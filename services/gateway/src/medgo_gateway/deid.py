"""The gateway's use of the shared PHI redactor: whole messages, counted, fail closed.

Only the role and the (redacted) text of each message are kept: extra fields a client
may send (names, tool-call arguments) are free text we do not inspect, so they are
dropped rather than risk storing PHI. If the redactor fails, `DeidentificationFailed`
is raised and the caller must not store or forward the clear text.

Redaction runs in the shared worker pool (`medgo_common.phi.guarded`) under a deadline
(`MEDGO_GATEWAY_REDACTION_TIMEOUT_S`): async handlers await it, so a long text never
holds the event loop, and a redaction past its deadline fails closed like any other.
"""

from __future__ import annotations

from medgo_common.phi import Redacted, RedactionError
from medgo_common.phi.guarded import aredact, redact_all_within
from medgo_common.schemas.openai import ChatMessage

from medgo_gateway.metrics import GatewayMetrics


class DeidentificationFailedError(Exception):
    """The redactor failed; the text it was given must be discarded."""


class Deidentifier:
    def __init__(self, metrics: GatewayMetrics, *, timeout: float) -> None:
        self.metrics = metrics
        self.timeout = timeout

    def _counted(self, result: Redacted) -> str:
        for phi_type, count in result.counts.items():
            if count:
                self.metrics.redactions.labels(type=phi_type.value).inc(count)
        return result.text

    def _failed(self) -> DeidentificationFailedError:
        self.metrics.redaction_failures.inc()
        return DeidentificationFailedError()

    async def atext(self, value: str) -> str:
        """Redacted `value`, for async handlers: awaited, off the event loop."""
        if not value:
            return value
        try:
            return self._counted(await aredact(value, self.timeout))
        except RedactionError:
            raise self._failed() from None

    def record(
        self, messages: list[ChatMessage], response: str, *,
        redacted: list[ChatMessage] | None = None,
    ) -> tuple[list[ChatMessage], str]:
        """A record's messages (role and redacted text only: content parts keep their
        non-text parts out) and its answer, redacted in one pool task, for worker
        threads (the recorder's writer). `redacted`: the messages as `amessages`
        already returned them (prompt redaction), kept instead of redone."""
        texts = [] if redacted is not None else [m.text() for m in messages]
        try:
            *done, answer = redact_all_within([*texts, response], self.timeout)
        except RedactionError:
            raise self._failed() from None
        if redacted is None:
            redacted = [ChatMessage(role=m.role, content=self._counted(r) if t else t)
                        for m, t, r in zip(messages, texts, done, strict=True)]
        return redacted, self._counted(answer) if response else response

    async def amessages(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        """`messages` for async handlers."""
        return [ChatMessage(role=m.role, content=await self.atext(m.text())) for m in messages]
