"""DPO pairs in TRL's conversational preference format `{prompt, chosen, rejected}`.

Pairing rules (labels resolved as in `exports.query`):
1. Every *unacceptable* response yields at most one pair, in which it is `rejected`.
2. Its `chosen` is the clinician's corrected answer when there is one — an expert's
   answer to exactly this prompt is the strongest signal.
3. Otherwise `chosen` is an *acceptable* response to the same prompt (identical
   redacted messages): the unacceptable responses of a prompt take its acceptable
   ones in turn (round robin over at most `MAX_CHOSEN_PER_PROMPT` of them, oldest
   first), so one good answer is not copied into hundreds of pairs.
4. No pair when there is no chosen answer, or when chosen and rejected are the same
   text. Acceptable responses never appear as `rejected`.

`prompt` is the conversation as sent (system and earlier turns included); `chosen`
and `rejected` are one assistant message each, which is what `DPOTrainer` expects.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby
from operator import attrgetter
from typing import Any

from medgo_feedback.exports.query import RatedInteraction
from medgo_feedback.store import prompt_messages

MAX_CHOSEN_PER_PROMPT = 16
BY_PROMPT = True


def assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


def rows(items: Iterable[RatedInteraction]) -> Iterator[dict[str, Any]]:
    """Needs `items` grouped by prompt with acceptable ones first (`BY_PROMPT`)."""
    for _, group in groupby(items, key=attrgetter("prompt_key")):
        pool: list[str] = []
        turn = 0
        for item in group:
            if item.accepted:
                if len(pool) < MAX_CHOSEN_PER_PROMPT:
                    pool.append(item.response)
                continue
            if item.correction:
                chosen = item.correction
            elif pool:
                chosen = pool[turn % len(pool)]
                turn += 1
            else:
                continue
            if chosen.strip() == item.response.strip():
                continue
            yield {
                "prompt": prompt_messages(item.messages),
                "chosen": assistant(chosen),
                "rejected": assistant(item.response),
            }
