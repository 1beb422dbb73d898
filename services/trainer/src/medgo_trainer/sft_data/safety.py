"""Safety data (../shared/data/safety) → refusal and safe-answer examples.

Two kinds, both written the way the evaluation harness grades them (prompts and
answers come from `medgo_trainer.eval.safety`): CValues responsibility prompts
answered with the harness's refusal, and SafetyBench questions answered with the
keyed safe option. Caution: these staged files are also the harness's safety
evaluation sets (MANIFEST.md has no Safety-Prompts data), so the leakage guard drops
every one of them from a mixture that is evaluated with the same harness; the
datasheet reports that. Point ``files`` at other data in the same layouts to train.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.eval.safety import Refusal, SafetyBench
from medgo_trainer.eval.tasks import Task
from medgo_trainer.sft_data.example import SftExample, SourceError, chat
from medgo_trainer.sft_data.sourcefiles import SourceFile

NAME = "safety"
OPTIONS = frozenset({"kinds"})
KINDS: dict[str, tuple[type[Task], tuple[SourceFile, ...]]] = {
    "refusal": (Refusal, (SourceFile(Refusal.eval_file, "json", ("prompt",)),)),
    "safety-mcq": (SafetyBench, (
        SourceFile(SafetyBench.eval_file, "json", ("question", "options")),
        SourceFile(SafetyBench.answers_file, "json"),
    )),
}


def files(options: dict) -> tuple[SourceFile, ...]:
    kinds = options.get("kinds", list(KINDS))
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise SourceError(f"source 'safety': unknown kind(s) {unknown}; known: {list(KINDS)}")
    return tuple(f for k in kinds for f in KINDS[k][1])


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    for kind in options.get("kinds", KINDS):
        task = KINDS[kind][0]()
        for example in task.load(data_dir):
            yield SftExample(chat(task.prompt(example), task.answer(example)), NAME, kind,
                             meta={"id": example.id})
