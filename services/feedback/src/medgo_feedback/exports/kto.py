"""KTO examples in TRL's unpaired preference format `{prompt, completion, label}`.

One example per rated interaction: its response, labelled `true` when the ratings
resolve to acceptable (see `exports.query`) and `false` otherwise. An unacceptable
interaction with a clinician's correction adds a second example: the correction,
labelled `true`. KTO needs no pairs, so every rating counts, not only paired ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from medgo_feedback.exports.dpo import assistant
from medgo_feedback.exports.query import RatedInteraction
from medgo_feedback.store import prompt_messages

BY_PROMPT = False


def rows(items: Iterable[RatedInteraction]) -> Iterator[dict[str, Any]]:
    for item in items:
        prompt = prompt_messages(item.messages)
        yield {"prompt": prompt, "completion": assistant(item.response), "label": item.accepted}
        if item.correction:
            yield {"prompt": prompt, "completion": assistant(item.correction), "label": True}
