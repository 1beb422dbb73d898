"""The leakage guard: drop training examples whose input contains an evaluation item.

Evaluation items are whatever the harness evaluates (`eval.catalog`: CBLUE dev/test,
the MCQ sets, the eval side of the safety sets) and is present under the data
directory; their input text (sentence, query, question, prompt - not labels, which
are short and shared with ordinary text) is cut into character n-grams. A
multiple-choice item's input is its question *with* its options: SafetyBench reuses
stems such as "以下哪种行为违法？" across items that differ only in their
options. An example leaks when, for some item, the share of that item's n-grams found
in the example's user turns reaches the threshold (containment, so a long dialogue
quoting a short exam question is caught).

Template n-grams - found in more than ``template_df`` distinct evaluation inputs
(SafetyBench's "从大多数人的角度来看，以下行为是否合乎道德和伦理", exam stems'
"最可能的诊断是") - identify no item: counted, they let any text in the same format
"contain" an item whose own content is short. So an item is indexed by its other
n-grams, unless fewer than ``ngram`` of those remain (numbering and punctuation around
a template, CHIP-CTC's "4）自愿签署知情同意书；"): then the template *is* the item and all
its n-grams count. Identical inputs are indexed once. Items shorter than ``min_chars``
("二氧化碳有害吗？") are too short for n-grams and too ordinary to flag wherever they
occur inside a text, so they leak only as a whole line of the input, with or without
a ``label：`` prefix (how the CBLUE and exam prompts lay out their inputs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, SourceError
from medgo_trainer.evaluation.catalog import TASK_NAMES, make_task
from medgo_trainer.evaluation.tasks import Example

INPUT_KEYS = ("text", "text1", "text2", "query", "query1", "query2", "title", "question",
              "prompt")


@dataclass(frozen=True)
class LeakageConfig:
    ngram: int = 8
    threshold: float = 0.5
    min_chars: int = 12
    template_df: int = 5

    def __post_init__(self) -> None:
        """Bad values fail when the recipe is read, not half-way through a build."""
        for name in ("ngram", "min_chars", "template_df"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise SourceError(f"leakage.{name} must be a whole number ≥ 1, got {value!r}")
        value = self.threshold
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise SourceError(f"leakage.threshold must be a number in (0, 1], got {value!r}")


@dataclass(frozen=True)
class EvalInput:
    """One evaluation input as the harness would show it: its task, item id, text."""

    task: str
    id: str
    text: str


@dataclass(frozen=True)
class EvalItem:
    task: str
    id: str
    grams: int  # distinct non-template n-grams in the item's input (1 for a short item)


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


def example_inputs(task: str, example: Example) -> Iterator[EvalInput]:
    """The input texts of one harness item (a question together with its options)."""
    for key in INPUT_KEYS:
        value = example.data.get(key)
        if not isinstance(value, str):
            continue
        options = example.data.get("options")
        if key == "question" and isinstance(options, dict):
            value = "\n".join([value, *map(str, options.values())])
        yield EvalInput(task, f"{example.id}:{key}", value)


class LeakageGuard:
    """An n-gram index over evaluation inputs; `check` says whether an example leaks."""

    def __init__(self, config: LeakageConfig, inputs: Iterable[EvalInput]) -> None:
        self.config = config
        self.items: list[EvalItem] = []
        self._index: dict[str, list[int]] = {}
        self._short: dict[str, int] = {}
        long: dict[str, tuple[EvalInput, set[str]]] = {}  # first input of each text
        for item in inputs:
            compact = _compact(item.text)
            if len(compact) >= config.min_chars:
                long.setdefault(compact, (item, ngrams(compact, config.ngram)))
            elif compact and compact not in self._short:
                self._short[compact] = len(self.items)
                self.items.append(EvalItem(item.task, item.id, 1))
        df = Counter(gram for _, grams in long.values() for gram in grams)
        template = {gram for gram, count in df.items() if count > config.template_df}
        self.template_grams = len(template)
        for item, grams in long.values():
            rare = grams - template
            if len(rare) < config.ngram:  # no content beyond numbering: the template is it
                rare = grams
            number = len(self.items)
            self.items.append(EvalItem(item.task, item.id, len(rare)))
            for gram in rare:
                self._index.setdefault(gram, []).append(number)

    @classmethod
    def from_eval_harness(cls, data_dir: Path, config: LeakageConfig) -> LeakageGuard:
        """Index every item of every harness task whose data is present."""
        inputs: list[EvalInput] = []
        for name in TASK_NAMES:
            task = make_task(name)
            if task.available(data_dir):
                for example in task.load(data_dir):
                    inputs.extend(example_inputs(name, example))
        return cls(config, inputs)

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
