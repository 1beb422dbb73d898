"""Task selection: names and groups, missing data, and the seeded sample."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_trainer.evaluation.catalog import GROUPS, resolve_tasks
from medgo_trainer.evaluation.mcq import CMExam
from medgo_trainer.evaluation.runner import plan_tasks, sample
from medgo_trainer.evaluation.tasks import Example, TaskDataMissing


def test_groups_skip_tasks_without_data_but_names_do_not(data_dir: Path) -> None:
    names = [t.name for t in resolve_tasks(["cblue", "cmeee", "mcq"], data_dir)]
    assert "chip-cdee" not in names and "mcq-clinicalqa" not in names
    assert names.count("cmeee") == 1
    assert set(names) == (set(GROUPS["cblue"]) | set(GROUPS["mcq"])) - {
        "chip-cdee",
        "mcq-clinicalqa",
    }
    with pytest.raises(TaskDataMissing, match=r"CHIP-CDEE_dev\.json"):
        resolve_tasks(["chip-cdee"], data_dir)
    with pytest.raises(ValueError, match="unknown task 'cmee'"):
        resolve_tasks(["cmee"], data_dir)
    (mcq,) = resolve_tasks(["mcq-cmexam"], data_dir, scoring="logprob")
    assert isinstance(mcq, CMExam) and mcq.scoring == "logprob"


def test_sample_is_seeded_and_keeps_file_order() -> None:
    items = [Example(id=str(i), data={}) for i in range(100)]
    first = sample(items, 10, seed=0)
    assert first == sample(items, 10, seed=0)
    assert [int(e.id) for e in first] == sorted(int(e.id) for e in first)
    assert first != sample(items, 10, seed=1)
    assert sample(items, 500, seed=0) == items


def test_plan_rejects_bad_limits_and_draws_shots_outside_the_sample(data_dir: Path) -> None:
    with pytest.raises(ValueError, match="limit must be at least 1"):
        plan_tasks(["cmeee"], data_dir, limit=0, shots=0, seed=0)
    with pytest.raises(ValueError, match="shots"):
        plan_tasks(["cmeee"], data_dir, limit=1, shots=-1, seed=0)
    (planned,) = plan_tasks(["cmeee"], data_dir, limit=5, shots=2, seed=0)  # no train split
    assert len(planned.shots) == 2
    assert not {e.id for e in planned.shots} & {e.id for e in planned.examples}
    messages = planned.task.messages(planned.examples[0], planned.shots)
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
