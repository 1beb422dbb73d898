"""Scoring the redactor against a labelled corpus (shared by tests and bench/phi.py).

A gold span counts as found when a predicted span of the same type overlaps it, and
a predicted span counts as correct when it overlaps a gold span of the same type.
Overlap rather than exact boundaries, because what matters for de-identification is
that the identifying characters are gone; boundary slips (a trailing "室" of an
address) are visible in the redacted text and in the unit tests instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medgo_common.phi.patterns import PhiType, Span
from medgo_common.phi.redactor import find_spans


@dataclass(frozen=True)
class Example:
    """One labelled sentence of the corpus."""

    text: str
    spans: tuple[Span, ...]


@dataclass
class Tally:
    """Counts for one PHI type (or all of them)."""

    tp_pred: int = 0  # predicted spans that hit a gold span
    fp: int = 0
    tp_gold: int = 0  # gold spans that were hit
    fn: int = 0

    @property
    def precision(self) -> float:
        total = self.tp_pred + self.fp
        return self.tp_pred / total if total else 1.0

    @property
    def recall(self) -> float:
        total = self.tp_gold + self.fn
        return self.tp_gold / total if total else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def support(self) -> int:
        return self.tp_gold + self.fn


def load_corpus(path: Path) -> Iterator[Example]:
    """Read `{"text", "spans": [{"start", "end", "type"}]}` lines."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                row = json.loads(line)
                spans = (Span(PhiType(s["type"]), s["start"], s["end"]) for s in row["spans"])
                yield Example(row["text"], tuple(spans))


def _overlaps(a: Span, b: Span) -> bool:
    return a.type == b.type and a.start < b.end and b.start < a.end


def score(examples: Iterable[Example]) -> dict[PhiType | None, Tally]:
    """Per-type tallies, plus the micro total under the key None."""
    tallies: dict[PhiType | None, Tally] = {t: Tally() for t in PhiType}
    tallies[None] = Tally()
    for example in examples:
        predicted = find_spans(example.text)
        for span in predicted:
            hit = any(_overlaps(span, gold) for gold in example.spans)
            for key in (span.type, None):
                if hit:
                    tallies[key].tp_pred += 1
                else:
                    tallies[key].fp += 1
        for gold in example.spans:
            hit = any(_overlaps(gold, span) for span in predicted)
            for key in (gold.type, None):
                if hit:
                    tallies[key].tp_gold += 1
                else:
                    tallies[key].fn += 1
    return tallies
