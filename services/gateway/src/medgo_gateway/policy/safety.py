"""Safety policy: refuse clearly illegal or dangerous requests before the model runs.

In the spirit of Safety-Prompts / CValues, but deliberately narrow: a hospital model
is used by doctors, and refusing "患者过量服用对乙酰氨基酚如何处理" or "自杀风险评估
量表有哪些" would hurt the people it is for. So a category fires only when *every*
pattern of one of its rules is present (the harmful object AND the intent, e.g.
安眠药 + 没有处方 + 买), and never when a clinical or legal framing is present
(患者, 抢救, 评估, 违法吗 ...). The rules live in `safety_rules.json` beside this
module, so the policy can be reviewed and changed without touching code.

Only the user's latest turns are read: system prompts and earlier assistant text
are ours, and an old turn should not keep a conversation refused forever.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from medgo_common.schemas.openai import ChatMessage
from pydantic import BaseModel, ConfigDict, Field, field_validator

_PATTERN_LIST = list[re.Pattern[str]]
_WHITESPACE = re.compile(r"\s+")


def _compile(patterns: list[str]) -> _PATTERN_LIST:
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern))
        except re.error as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from None
    return compiled


class _Rule(BaseModel):
    """Fires when all `all` patterns match and no `unless` pattern does."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    all: _PATTERN_LIST = Field(min_length=1)
    unless: _PATTERN_LIST = []

    _compile_all = field_validator("all", "unless", mode="before")(_compile)

    def matches(self, text: str) -> bool:
        return all(p.search(text) for p in self.all) and not any(
            p.search(text) for p in self.unless
        )


class _Category(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    id: str = Field(pattern=r"^[a-z_]+$")
    description: str
    refusal: str = Field(min_length=1)
    rules: list[_Rule] = Field(min_length=1)
    unless: _PATTERN_LIST = []

    _compile_unless = field_validator("unless", mode="before")(_compile)


class _RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    comment: list[str] = Field(default=[], alias="_comment")
    unless: _PATTERN_LIST = []
    window_user_turns: int = Field(ge=1)
    categories: list[_Category] = Field(min_length=1)

    _compile_unless = field_validator("unless", mode="before")(_compile)


@dataclass(frozen=True)
class SafetyDecision:
    """A refusal: which category fired and the text to answer with instead of the model."""

    category: str
    refusal: str

    @property
    def message(self) -> str:
        """The refusal text (the name the gateway's completion handler reads)."""
        return self.refusal


def normalize(text: str) -> str:
    """NFKC, lower case, no whitespace: "自 杀", "ＰＳ" and "ps" read the same."""
    return _WHITESPACE.sub("", unicodedata.normalize("NFKC", text).lower())


def _default_rules() -> str:
    return resources.files("medgo_gateway.policy").joinpath("safety_rules.json").read_text("utf-8")


class SafetyPolicy:
    """Checks a conversation's latest user turns against the packaged rule file."""

    def __init__(self, rules_path: Path | None = None) -> None:
        raw = rules_path.read_text("utf-8") if rules_path else _default_rules()
        rules = _RuleFile.model_validate(json.loads(raw))
        self._window = rules.window_user_turns
        self._unless = rules.unless
        self._categories = rules.categories

    @property
    def categories(self) -> list[str]:
        """Category ids, in the order they are checked."""
        return [c.id for c in self._categories]

    def check(self, messages: Sequence[ChatMessage]) -> SafetyDecision | None:
        """The first category the request falls into, or None if allowed.

        The latest user turns are read together; every other client-supplied turn
        (system, developer, assistant, tool) is read on its own, since a client writes
        those too and a harmful request moved there reaches the model just the same.
        An assistant turn that is this policy's own refusal is skipped, so a
        conversation that was refused once can go on.
        """
        user_turns = [m.text() for m in messages if m.role == "user"]
        texts = ["\n".join(user_turns[-self._window :])]
        refusals = {c.refusal for c in self._categories}
        texts += [
            m.text() for m in messages
            if m.role != "user" and not (m.role == "assistant" and m.text() in refusals)
        ]
        for raw in texts:
            if decision := self._decide(normalize(raw)):
                return decision
        return None

    def _decide(self, text: str) -> SafetyDecision | None:
        if not text or any(p.search(text) for p in self._unless):
            return None
        for category in self._categories:
            if any(p.search(text) for p in category.unless):
                continue
            if any(rule.matches(text) for rule in category.rules):
                return SafetyDecision(category.id, category.refusal)
        return None
