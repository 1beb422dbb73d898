"""Scoring the redactor against a labelled corpus (shared by tests and bench/phi.py).

A gold span counts as found when a predicted span of the same type overlaps it, and
a predicted span counts as correct when it overlaps a gold span of the same type.
Overlap rather than exact boundaries, because what matters for de-identification is
that the identifying characters are gone; boundary slips (a trailing "室" of an
address) are visible in the redacted text and in the unit tests instead.
"""

from __future__ import annotations

import csv
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
    context: str = ""  # phi_synth.jsonl: prose, cue, record or clean


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
                yield Example(row["text"], tuple(spans), row.get("context", ""))


def _overlaps(a: Span, b: Span) -> bool:
    return a.type == b.type and a.start < b.end and b.start < a.end


def leaks(examples: Iterable[Example]) -> dict[PhiType, tuple[int, int]]:
    """Per type (gold spans, gold spans with a character left in clear).

    Stricter than `score`'s overlap: a grouped number redacted only in its first group
    ("ZY 2023 [住院号]") overlaps its gold span yet leaks the rest. A letter or digit
    (or Han character) of the gold span outside every predicted span is a leak;
    spaces and hyphens between groups are not.
    """
    counts: dict[PhiType, list[int]] = {}
    for example in examples:
        predicted = find_spans(example.text)
        for gold in example.spans:
            tally = counts.setdefault(gold.type, [0, 0])
            tally[0] += 1
            if any(
                example.text[i].isalnum() and not any(s.start <= i < s.end for s in predicted)
                for i in range(gold.start, gold.end)
            ):
                tally[1] += 1
    return {phi_type: (total, leaked) for phi_type, (total, leaked) in counts.items()}


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


def real_questions(data_dir: Path) -> list[str]:
    """The 13,408 real questions the false-alteration rate is measured on.

    The same set as the safety policy's false-refusal figure (bench/safety.py):
    Huatuo-26M test questions, Toyhom internal-medicine questions (title + question),
    CValues responsibility prompts and SafetyBench (zh) questions.
    """
    huatuo = json.loads(
        (data_dir / "corpus/zhongjing/huatuo26M_test_first3000.json").read_text(encoding="utf-8")
    )
    questions = [row["instruction"][0] for row in huatuo]
    toyhom = data_dir / "corpus/toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv"
    with toyhom.open(encoding="utf-8") as fh:
        questions += [f"{row['title']}\n{row['ask']}" for row in csv.DictReader(fh)]
    cvalues = data_dir / "safety/cvalues/cvalues_responsibility_prompts.jsonl"
    questions += [json.loads(line)["prompt"] for line in cvalues.open(encoding="utf-8")]
    safetybench = data_dir / "safety/safetybench/test_zh_subset.json"
    questions += [q["question"] for q in json.loads(safetybench.read_text(encoding="utf-8"))]
    return questions


def false_alterations(questions: Iterable[str], true_names: set[str]) -> list[tuple[str, str]]:
    """(question, span text) for each question altered by a span not in `true_names`."""
    found: list[tuple[str, str]] = []
    for question in questions:
        for span in find_spans(question):
            text = question[span.start : span.end]
            if span.type is not PhiType.NAME or text not in true_names:
                found.append((question, text))
                break
    return found


def load_names(path: Path) -> set[str]:
    """A reviewed list of names, one a line, `#` comments."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}
