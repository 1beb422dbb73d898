"""The leakage guard: drop training examples whose input contains an evaluation item.

Evaluation items are whatever the harness evaluates (`eval.catalog`: CBLUE dev/test,
the MCQ sets, the safety sets) and is present under the data directory; their input
text (sentence, query, question, prompt - not labels or options, which are short and
shared with ordinary text) is cut into character n-grams. An example leaks when, for
some item, the share of that item's n-grams found in the example's user turns reaches
the threshold (containment, so a long dialogue quoting a short exam question is
caught). Items shorter than ``min_chars`` ("二氧化碳有害吗？") are too short for n-grams
and too ordinary to flag wherever they occur inside a text, so they leak only as a
whole line of the input, with or without a ``label：`` prefix (how the CBLUE and exam
prompts lay out their inputs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from medgo_trainer.eval.catalog import TASK_NAMES, make_task
from medgo_trainer.sft_data.example import SftExample

INPUT_KEYS = ("text", "text1", "text2", "query", "query1", "query2", "title", "question",
              "prompt")


@dataclass(frozen=True)
class LeakageConfig:
    ngram: int = 8
    threshold: float = 0.5
    min_chars: int = 12


@dataclass(frozen=True)
class EvalItem:
    task: str
    id: str
    grams: int  # distinct n-grams in the item's input


@dataclass(frozen=True)
class Leak:
    """One removed example and the evaluation item it overlapped."""

    source: str
    task: str
    eval_task: str
    eval_id: str
    overlap: float
    input_preview: str


def _compact(text: str) -> str:
    return "".join(text.split())


def ngrams(text: str, n: int) -> set[str]:
    compact = _compact(text)
    return {compact[i:i + n] for i in range(len(compact) - n + 1)}


def _lines(text: str) -> set[str]:
    """Each line of ``text``, also without a short ``label：`` prefix, compacted."""
    found = set()
    for line in text.splitlines():
        found.add(_compact(line))
        label, sep, rest = line.partition("：")
        if sep and len(label) <= 6:
            found.add(_compact(rest))
    return found


class LeakageGuard:
    """An n-gram index over evaluation items; `check` says whether an example leaks."""

    def __init__(self, config: LeakageConfig) -> None:
        self.config = config
        self.items: list[EvalItem] = []
        self._index: dict[str, list[int]] = {}
        self._short: dict[str, int] = {}

    def add(self, task: str, item_id: str, text: str) -> None:
        compact = _compact(text)
        if not compact:
            return
        number = len(self.items)
        if len(compact) < self.config.min_chars:
            self.items.append(EvalItem(task, item_id, 1))
            self._short.setdefault(compact, number)
            return
        grams = ngrams(text, self.config.ngram)
        self.items.append(EvalItem(task, item_id, len(grams)))
        for gram in grams:
            self._index.setdefault(gram, []).append(number)

    @classmethod
    def from_eval_harness(cls, data_dir: Path, config: LeakageConfig) -> LeakageGuard:
        """Index every item of every harness task whose data is present."""
        guard = cls(config)
        for name in TASK_NAMES:
            task = make_task(name)
            if not task.available(data_dir):
                continue
            for example in task.load(data_dir):
                for key in INPUT_KEYS:
                    value = example.data.get(key)
                    if isinstance(value, str):
                        guard.add(name, f"{example.id}:{key}", value)
        return guard

    def check(self, example: SftExample) -> Leak | None:
        """The worst overlap at or above the threshold, or None when the example is clean."""
        text = example.user_text()
        for line in _lines(text):
            if (number := self._short.get(line)) is not None:
                return self._leak(example, number, 1.0)
        hits: Counter[int] = Counter()
        for gram in ngrams(text, self.config.ngram):
            hits.update(self._index.get(gram, ()))
        best: tuple[float, int] | None = None
        for number, count in hits.items():
            overlap = count / self.items[number].grams
            if overlap >= self.config.threshold and (best is None or overlap > best[0]):
                best = (overlap, number)
        return None if best is None else self._leak(example, best[1], best[0])

    def _leak(self, example: SftExample, number: int, overlap: float) -> Leak:
        item = self.items[number]
        return Leak(example.source, example.task, item.task, item.id, round(overlap, 3),
                    example.user_text()[:80])
