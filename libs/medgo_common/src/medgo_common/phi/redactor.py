"""Redaction: run every detector, resolve overlaps, replace spans with placeholders.

The contract callers rely on is *fail closed*: `redact` either returns a fully
redacted text or raises `RedactionError`. Any unexpected failure inside a detector
(a bad regex on odd input, a missing data file) becomes `RedactionError`, whose
message never contains the input, so a caller that catches it can log the error and
drop or quarantine the record instead of storing clear text.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from medgo_common.phi.addresses import find_addresses
from medgo_common.phi.labels import find_labelled_values
from medgo_common.phi.names import find_names
from medgo_common.phi.patterns import (
    PhiType,
    Span,
    find_beds,
    find_birth_dates,
    find_emails,
    find_id_cards,
    find_phones,
    find_record_numbers,
)
from medgo_common.phi.prose_names import find_cued_names, find_prose_names


class RedactionError(RuntimeError):
    """De-identification failed; the text must not be stored or logged in clear."""


# Detectors in priority order: when spans overlap, the earlier detector wins (a
# labelled value, which covers every group of "ZY 2023 0045", beats the record pattern
# that sees its first group; an ID number beats the phone pattern that matches its
# tail; an e-mail beats a name).
_DETECTORS: tuple[Callable[[str], Iterator[Span]], ...] = (
    find_labelled_values,
    find_id_cards,
    find_emails,
    find_record_numbers,
    find_phones,
    find_birth_dates,
    find_addresses,
    find_names,
    find_cued_names,
    find_beds,
    find_prose_names,
)


# Full-width ASCII (１３８, ＠, Ｘ) mapped one-to-one onto ASCII, so detectors see one
# alphabet while offsets still index the original text.
_HALF_WIDTH = {code: code - 0xFEE0 for code in range(0xFF01, 0xFF5F)}


@dataclass(frozen=True)
class Redacted:
    """The redacted text, what was found, and where it was in the original."""

    text: str
    counts: dict[PhiType, int] = field(default_factory=dict)
    spans: tuple[Span, ...] = ()

    @property
    def found(self) -> bool:
        """True if anything was redacted."""
        return bool(self.spans)


def _select(spans: Iterable[tuple[int, Span]]) -> list[Span]:
    """Non-overlapping spans: by detector priority, then longest first.

    The kept spans stay sorted by start, so each candidate is checked against its two
    neighbours only (bisect): O(k log k) for k candidates, not O(k^2), which matters
    on adversarial text where every few characters are a candidate ("1床1床…").
    """
    starts: list[int] = []
    taken: list[Span] = []
    for _, span in sorted(spans, key=lambda ps: (ps[0], ps[1].start - ps[1].end, ps[1].start)):
        at = bisect.bisect_left(starts, span.start)
        if at > 0 and taken[at - 1].end > span.start:
            continue
        if at < len(taken) and taken[at].start < span.end:
            continue
        starts.insert(at, span.start)
        taken.insert(at, span)
    return taken


def find_spans(text: str) -> list[Span]:
    """All PHI spans in `text`, non-overlapping and sorted by position."""
    if not isinstance(text, str):
        raise RedactionError(f"redact() needs str, got {type(text).__name__}")
    try:
        probe = text.translate(_HALF_WIDTH)
        found = [(rank, span) for rank, det in enumerate(_DETECTORS) for span in det(probe)]
        return _select(span for span in found if span[1].end > span[1].start)
    except Exception as exc:
        raise RedactionError(f"PHI detection failed ({type(exc).__name__})") from None


def redact(text: str) -> Redacted:
    """Replace every PHI span in `text` with its typed placeholder (e.g. `[姓名]`).

    Raises `RedactionError` on any failure: never fall back to the original text.
    """
    spans = find_spans(text)
    pieces: list[str] = []
    cursor = 0
    for span in spans:
        pieces.append(text[cursor : span.start])
        pieces.append(span.type.placeholder)
        cursor = span.end
    pieces.append(text[cursor:])
    return Redacted("".join(pieces), dict(Counter(s.type for s in spans)), tuple(spans))


def contains_phi(text: str) -> bool:
    """True if `text` holds any PHI the redactor would replace."""
    return bool(find_spans(text))
