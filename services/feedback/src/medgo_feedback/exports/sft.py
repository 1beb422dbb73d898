"""SFT conversations in TRL's conversational format `{messages}`.

Only answers a clinician would sign: the response of an interaction that resolves to
acceptable (see `exports.query`), or the correction of one that resolves to
unacceptable. The prompt turns come first, the answer is the final assistant turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from medgo_feedback.exports.query import RatedInteraction
from medgo_feedback.store import prompt_messages

BY_PROMPT = False


def rows(items: Iterable[RatedInteraction]) -> Iterator[dict[str, Any]]:
    for item in items:
        answer = item.response if item.accepted else item.correction
        if answer:
            messages = prompt_messages(item.messages)
            yield {"messages": [*messages, {"role": "assistant", "content": answer}]}
