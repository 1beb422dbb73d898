"""The task catalogue: CLI names → task objects, plus the groups ``cblue``, ``mcq``, ``all``.

Groups expand to the tasks whose data is present, so ``--tasks all`` runs whatever
the data directory holds; a task named explicitly without data is an error instead.
"""

from __future__ import annotations

from pathlib import Path

from medgo_trainer.evaluation.behaviour import CareAdvice
from medgo_trainer.evaluation.cblue import CBLUE_TASKS
from medgo_trainer.evaluation.mcq import CNMLEQA, ClinicalQA, CMExam, McqTask, Scoring
from medgo_trainer.evaluation.safety import Refusal, SafetyBench
from medgo_trainer.evaluation.tasks import Task, TaskDataMissing

_MCQ: tuple[type[McqTask], ...] = (CMExam, CNMLEQA, ClinicalQA, SafetyBench)
_OTHER: tuple[type[Task], ...] = (Refusal, CareAdvice)
TASK_NAMES: tuple[str, ...] = tuple(t.name for t in (*CBLUE_TASKS, *_MCQ, *_OTHER))
GROUPS: dict[str, tuple[str, ...]] = {
    "cblue": tuple(t.name for t in CBLUE_TASKS),
    "mcq": tuple(t.name for t in _MCQ if t is not SafetyBench),
    "all": TASK_NAMES,
}


def make_task(name: str, scoring: Scoring = "generate") -> Task:
    """The task called ``name`` (multiple-choice tasks get the scoring mode)."""
    for mcq in _MCQ:
        if mcq.name == name:
            return mcq(scoring)
    for cls in (*CBLUE_TASKS, *_OTHER):
        if cls.name == name:
            return cls()
    raise ValueError(
        f"unknown task {name!r}; known: {', '.join(TASK_NAMES)} or a group ({', '.join(GROUPS)})"
    )


def resolve_tasks(names: list[str], data_dir: Path, scoring: Scoring = "generate") -> list[Task]:
    """Task objects for ``names`` (task names or groups), in order, without repeats.

    Raises ValueError for an unknown name and TaskDataMissing for an explicitly named
    task whose data file is absent.
    """
    tasks: list[Task] = []
    seen: set[str] = set()
    for name in names:
        group = GROUPS.get(name)
        for member in group or (name,):
            if member in seen:
                continue
            task = make_task(member, scoring)
            if not task.available(data_dir):
                if group is not None:
                    continue
                raise TaskDataMissing(
                    f"task {member!r} needs {data_dir / task.eval_file}, which does not exist"
                )
            seen.add(member)
            tasks.append(task)
    if not tasks:
        raise ValueError(f"no task to run among {names} (groups skip tasks without data)")
    return tasks
