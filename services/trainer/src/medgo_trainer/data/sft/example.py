"""The unit every builder yields, and the error every bad input becomes."""

from __future__ import annotations

from dataclasses import dataclass, field

from medgo_trainer.configfile import ConfigError

Message = dict[str, str]


class SourceError(ConfigError):
    """A source or mixture recipe cannot be used; the message says which and how to fix
    it. A `ConfigError`, so `medgo-train` prints it as one line and exits 2."""


@dataclass(frozen=True)
class SftExample:
    """One chat for SFT, plus where it came from (kept out of the training rows).

    ``synthetic`` marks examples whose wording we composed (templates, restructured
    answers) rather than took from a human or model conversation.
    """

    messages: list[Message]
    source: str
    task: str
    synthetic: bool = False
    meta: dict[str, str] = field(default_factory=dict)

    def user_text(self) -> str:
        """Everything the model is shown as input: the user turns, joined."""
        return "\n".join(m["content"] for m in self.messages if m["role"] == "user")

    def text(self) -> str:
        return "\n".join(m["content"] for m in self.messages)


def chat(question: str, answer: str) -> list[Message]:
    """A single-turn chat."""
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
