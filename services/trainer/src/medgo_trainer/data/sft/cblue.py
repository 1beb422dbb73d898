"""CBLUE training files → instruction examples that the evaluation harness would grade.

The prompt and the answer of each example come from the harness's own task objects
(`Task.prompt` / `Task.answer` in `medgo_trainer.evaluation.cblue`), so the model is trained
on exactly the instruction wording and output format (``实体：类型`` lines,
``主体|关系|客体``, ``##``-joined terms, label words) that the harness's parsers read.
Only tasks with a *train* file can be used: CMeEE and CMeIE ship dev data only, and
their dev split is what the harness evaluates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, SourceError, chat
from medgo_trainer.data.sft.sourcefiles import SourceFile
from medgo_trainer.evaluation.cblue import CBLUE_TASKS
from medgo_trainer.evaluation.tasks import Task

NAME = "cblue"
OPTIONS = frozenset({"tasks"})
# Fields a task's train records must have (the harness reads them).
_FIELDS: dict[str, tuple[str, ...]] = {
    "chip-cdn": ("text", "normalized_result"),
    "chip-cdee": ("text", "event"),
    "chip-ctc": ("text", "label"),
    "chip-sts": ("text1", "text2", "label"),
    "kuake-qic": ("query", "label"),
    "kuake-qtr": ("query", "title", "label"),
    "kuake-qqr": ("query1", "query2", "label"),
    "text2dt": ("text", "tree"),
}
TRAINABLE = {t.name: t for t in CBLUE_TASKS if t.train_file is not None}


def _chosen(data_dir: Path, options: dict) -> list[Task]:
    """``options['tasks']`` (each must have its train file) or every task that has one."""
    names = options.get("tasks")
    if names is None:
        tasks = [cls() for cls in TRAINABLE.values()]
        return [t for t in tasks if t.train_file and (data_dir / t.train_file).is_file()]
    unknown = [n for n in names if n not in TRAINABLE]
    if unknown:
        raise SourceError(f"source 'cblue': no train file for task(s) {unknown}; "
                          f"tasks with one: {sorted(TRAINABLE)}")
    return [TRAINABLE[n]() for n in names]


def files(data_dir: Path, options: dict) -> tuple[SourceFile, ...]:
    return tuple(SourceFile(str(t.train_file), "json", _FIELDS[t.name])
                 for t in _chosen(data_dir, options))


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    for task in _chosen(data_dir, options):
        task.load(data_dir)  # reads the label set some tasks keep beside their data
        labels = getattr(task, "labels", None)
        for example in task.shot_pool(data_dir) or []:
            if labels is not None and example.data["label"] not in labels:
                continue
            yield SftExample(chat(task.prompt(example), task.answer(example)), NAME, task.name,
                             meta={"id": example.id})
