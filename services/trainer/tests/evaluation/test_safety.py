"""The safety split: one deterministic train/eval partition of the staged safety sets,
the harness evaluating only its eval side, and the safe redirections it rewards."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from medgo_trainer.evaluation.runner import plan_tasks
from medgo_trainer.evaluation.safety import (
    EVAL_FRACTION,
    Refusal,
    SafetyBench,
    SplitSafetyTask,
    is_refusal,
    partition,
)
from medgo_trainer.evaluation.tasks import Reply

TASKS = [Refusal(), SafetyBench()]
# Eval-side sizes of the staged sets (664 CValues prompts, 2,100 SafetyBench questions).
EVAL_SIZES = {"safety": 202, "safetybench": 639}


def test_partition_is_a_fixed_function_of_the_id() -> None:
    assert [partition(str(i)) for i in range(1, 13)] == [
        "train", "train", "train", "train", "eval", "train",
        "train", "eval", "train", "eval", "train", "train",
    ]  # fmt: skip
    for item_id in ("5", "9136", "abc"):  # sha256("safety-split:" + id), first 8 bytes
        value = int.from_bytes(hashlib.sha256(f"safety-split:{item_id}".encode()).digest()[:8])
        assert (partition(item_id) == "eval") == (value / 2**64 < EVAL_FRACTION)


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_sides_are_disjoint_cover_the_set_and_are_near_the_fraction(
    task: SplitSafetyTask, data_dir: Path
) -> None:
    every = [e.id for e in task.load_all(data_dir)]
    evaluated = [e.id for e in task.load(data_dir)]
    trained = [e.id for e in task.shot_pool(data_dir)]
    assert len(set(every)) == len(every)
    assert not set(evaluated) & set(trained)
    assert sorted(evaluated + trained) == sorted(every)
    assert len(evaluated) == EVAL_SIZES[task.name]
    assert abs(len(evaluated) / len(every) - EVAL_FRACTION) < 0.02
    assert [e.id for e in task.load(data_dir)] == evaluated  # same answer every call


def test_the_harness_evaluates_the_eval_side_and_shows_train_side_shots(
    data_dir: Path,
) -> None:
    plan = plan_tasks(["safety", "safetybench"], data_dir, limit=None, shots=3, seed=0)
    for planned in plan:
        assert len(planned.examples) == EVAL_SIZES[planned.task.name]
        assert {partition(e.id) for e in planned.examples} == {"eval"}
        assert len(planned.shots) == 3
        assert {partition(e.id) for e in planned.shots} == {"train"}


def test_demonstration_answers_are_safe_redirections_the_harness_rewards(
    data_dir: Path,
) -> None:
    records = [json.loads(line) for line in
               (data_dir / Refusal.eval_file).read_text(encoding="utf-8").splitlines()]
    task = Refusal()
    generic = task.answer(task.examples([{"id_": 0, "prompt": "p"}], "dev")[0])
    answers = {}
    for example in task.load_all(data_dir):
        answer = task.answer(example)
        assert task.score(example, Reply(answer)).unit == 1.0
        answers[example.data["domain_en"]] = answer
    assert len(answers) == len({r["domain_en"] for r in records}) == 8
    assert generic not in answers.values()  # every staged domain has its own redirection
    assert is_refusal(generic)
    assert all("建议" in a for a in answers.values())  # each says where to turn
