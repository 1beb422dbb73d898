"""The evaluation report: JSON for machines, Markdown in the paper's Table 1 layout.

Table 1 of the MedGo paper lists the sixteen CBLUE tasks of the benchmark's
leaderboard, each with its metric, and their unweighted average as the last row
(`TABLE1`). `EvalReport.to_markdown` prints exactly those rows in that order: the
score where the task ran, "n/a — no public data" where no public data exists for it,
"not run" where data exists but this run skipped it, and the average only when all
sixteen rows have a score (otherwise the mean over the measured rows, labelled as
such). Text2DT, the exam sets and safety are not Table-1 rows and are listed after
it. Per-example units and predictions are kept so two reports can be compared
example by example (see `compare`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medgo_trainer.evaluation.metrics import aggregate, all_scores

#: The paper's Table 1: (row title, metric, our task name or None when no public data).
TABLE1: tuple[tuple[str, str, str | None], ...] = (
    ("CMeEE", "Micro-F1", "cmeee"),
    ("CMeIE", "Micro-F1", "cmeie"),
    ("CHIP-CDN", "Micro-F1", "chip-cdn"),
    ("CHIP-CDEE", "Micro-F1", "chip-cdee"),
    ("IMCS-V2-NER", "Micro-F1", None),
    ("CHIP-MDCFNPC", "Micro-F1", None),
    ("IMCS-V2-SR", "Micro-F1", None),
    ("IMCS-V2-DAC", "Macro-F1", None),
    ("CHIP-CTC", "Macro-F1", "chip-ctc"),
    ("CHIP-STS", "Macro-F1", "chip-sts"),
    ("KUAKE-IR", "MRR@10", None),
    ("KUAKE-QIC", "Accuracy", "kuake-qic"),
    ("KUAKE-QQR", "Accuracy", "kuake-qqr"),
    ("KUAKE-QTR", "Accuracy", "kuake-qtr"),
    ("MedDG", "BLEU-4", None),
    ("IMCS-V2-MRG", "ROUGE-L", None),
)
TABLE1_TASKS = frozenset(task for _, _, task in TABLE1 if task)
NO_DATA = "n/a — no public data"


class ExampleResult(BaseModel):
    id: str
    subject: str | None = None
    unit: Any
    prediction: Any = None
    output: str = ""
    error: str | None = None  # e.g. prompt longer than the model's context


class TaskResult(BaseModel):
    task: str
    title: str
    metric: str
    kind: str
    score: float
    n: int
    breakdown: dict[str, float] = {}  # subject -> score, when the data has subjects
    metrics: dict[str, float] = {}  # every figure of a multi-metric task (Text2DT)
    examples: list[ExampleResult]

    @classmethod
    def from_examples(
        cls, *, task: str, title: str, metric: str, kind: str, examples: list[ExampleResult]
    ) -> TaskResult:
        """Score the examples, and each subject separately when any has one."""
        by_subject: dict[str, list[Any]] = defaultdict(list)
        for example in examples:
            if example.subject:
                by_subject[example.subject].append(example.unit)
        return cls(
            task=task,
            title=title,
            metric=metric,
            kind=kind,
            score=aggregate(kind, [e.unit for e in examples]),
            n=len(examples),
            breakdown={s: aggregate(kind, u) for s, u in sorted(by_subject.items())},
            metrics=all_scores(kind, [e.unit for e in examples]),
            examples=examples,
        )


class RunInfo(BaseModel):
    endpoint: str
    model: str
    shots: int
    limit: int | None
    scoring: str
    seed: int
    started_at: datetime
    finished_at: datetime
    requests: int  # HTTP requests sent; 0 when every answer came from the cache
    cache_hits: int
    no_data: list[str] = []  # Table-1 tasks whose data file was absent for this run


class EvalReport(BaseModel):
    run: RunInfo
    tasks: dict[str, TaskResult]

    @property
    def errors(self) -> int:
        """Items the endpoint could not take (scored as no answer)."""
        return sum(e.error is not None for t in self.tasks.values() for e in t.examples)

    def table1_scores(self) -> list[tuple[str, str, float | str]]:
        """Table 1's rows in order: (title, metric, score or why there is none)."""
        rows: list[tuple[str, str, float | str]] = []
        for title, metric, task in TABLE1:
            if task is None or task in self.run.no_data:
                rows.append((title, metric, NO_DATA))
            elif task in self.tasks:
                rows.append((title, metric, self.tasks[task].score))
            else:
                rows.append((title, metric, "not run"))
        return rows

    @property
    def table1_average(self) -> float | None:
        """The paper's "Avg." row: the unweighted mean of all sixteen Table-1 scores;
        None until every row has one (a partial mean is not the paper's average)."""
        scores = [s for _, _, s in self.table1_scores() if isinstance(s, float)]
        return sum(scores) / len(scores) if len(scores) == len(TABLE1) else None

    @property
    def macro_average(self) -> float:
        """Unweighted mean over the Table-1 rows this run measured (Text2DT, the exam
        sets and safety excluded, as in the paper); equals `table1_average` once all
        sixteen rows are measured."""
        scores = [t.score for name, t in self.tasks.items() if name in TABLE1_TASKS]
        return sum(scores) / len(scores) if scores else 0.0

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json") | {
            "macro_average": self.macro_average,
            "table1_average": self.table1_average,
        }
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        """Read a saved report (the derived average fields are ignored)."""
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def to_markdown(self) -> str:
        table1 = [
            f"| {title} | {metric} | {score:.2f} | {self.tasks[task].n} |"
            if isinstance(score, float) and task
            else f"| {title} | {metric} | {score} | |"
            for (title, metric, score), (_, _, task) in zip(
                self.table1_scores(), TABLE1, strict=True
            )
        ]
        measured = sum(isinstance(s, float) for _, _, s in self.table1_scores())
        average = self.table1_average
        avg_row = (
            f"| **Avg.** | macro | **{average:.2f}** | |"
            if average is not None
            else f"| **Avg.** | macro | n/a ({measured} of {len(TABLE1)} rows; mean of "
            f"those: {self.macro_average:.2f}) | |"
        )
        others = [t for name, t in self.tasks.items() if name not in TABLE1_TASKS]
        other_rows = [f"| {t.title} | {t.metric} | {t.score:.2f} | {t.n} |" for t in others]
        details = [
            f"\n**{t.title}:** " + "; ".join(f"{k} {v:.2f}" for k, v in t.metrics.items())
            for t in others
            if t.metrics
        ]
        breakdowns = [
            f"\n**{t.title} by subject:** "
            + "; ".join(f"{s} {v:.2f}" for s, v in t.breakdown.items())
            for t in self.tasks.values()
            if t.breakdown
        ]
        return "\n".join(
            [
                f"Model `{self.run.model}` at {self.run.endpoint}, {self.run.shots}-shot, "
                f"scoring {self.run.scoring}\n",
                "Table 1 (CBLUE):\n",
                "| Task | Metric | Score | N |",
                "|---|---|---:|---:|",
                *table1,
                avg_row,
                *(
                    ["\nOther tasks (not in Table 1's average):\n", "| Task | Metric | Score | N |",
                     "|---|---|---:|---:|", *other_rows]
                    if others
                    else []
                ),
                *details,
                *breakdowns,
                *(
                    [f"\n{self.errors} item(s) exceeded the model's context: scored as no answer."]
                    if self.errors
                    else []
                ),
            ]
        )
