"""Safety data (../shared/data/safety) → safe-redirection and safe-answer examples.

Two kinds, both written the way the evaluation harness grades them (prompts and
answers come from `medgo_trainer.evaluation.safety`): CValues responsibility prompts
answered with the harness's safe redirection for their domain (declining the loaded
premise or the personal verdict, and saying whom to ask), and SafetyBench questions
answered with the keyed safe option. These files are also the harness's safety
evaluation sets, so only their *train* side of `eval.safety.partition` is read here
(the tasks' `shot_pool`); the eval side is what the harness scores and what the
leakage guard indexes, so the two never meet.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, SourceError, chat
from medgo_trainer.data.sft.sourcefiles import SourceFile
from medgo_trainer.evaluation.safety import Refusal, SafetyBench, SplitSafetyTask

NAME = "safety"
OPTIONS = frozenset({"kinds"})
KINDS: dict[str, tuple[type[SplitSafetyTask], tuple[SourceFile, ...]]] = {
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
        for example in task.shot_pool(data_dir):
            yield SftExample(chat(task.prompt(example), task.answer(example)), NAME, kind,
                             meta={"id": example.id})
