"""The gateway's use of the shared PHI redactor: whole messages, counted, fail closed.

Only the role and the (redacted) text of each message are kept: extra fields a client
may send (names, tool-call arguments) are free text we do not inspect, so they are
dropped rather than risk storing PHI. If the redactor fails, `DeidentificationFailed`
is raised and the caller must not store or forward the clear text.
"""

from __future__ import annotations

from medgo_common.phi import RedactionError, redact
from medgo_common.schemas.openai import ChatMessage

from medgo_gateway.metrics import GatewayMetrics


class DeidentificationFailedError(Exception):
    """The redactor failed; the text it was given must be discarded."""


class Deidentifier:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def text(self, value: str) -> str:
        if not value:
            return value
        try:
            result = redact(value)
        except RedactionError as exc:
            self.metrics.redaction_failures.inc()
            raise DeidentificationFailedError from exc
        for phi_type, count in result.counts.items():
            if count:
                label = str(getattr(phi_type, "value", phi_type))
                self.metrics.redactions.labels(type=label).inc(count)
        return result.text

    def message(self, message: ChatMessage) -> ChatMessage:
        """Role and redacted text only (content parts keep their non-text parts out)."""
        return ChatMessage(role=message.role, content=self.text(message.text()))

    def messages(self, messages: list[ChatMessage]) -> list[ChatMessage]:
        return [self.message(m) for m in messages]
