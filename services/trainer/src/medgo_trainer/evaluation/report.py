"""The evaluation report: JSON for machines, a Markdown table in the paper's layout.

Table 1 of the MedGo paper lists task, metric and score per CBLUE task with the
macro average as its last row; `EvalReport.to_markdown` prints the same layout for
whatever tasks ran. Per-example units and predictions are kept so two reports can
be compared example by example (see `compare`).
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medgo_trainer.evaluation.metrics import aggregate


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


class EvalReport(BaseModel):
    run: RunInfo
    tasks: dict[str, TaskResult]

    @property
    def errors(self) -> int:
        """Items the endpoint could not take (scored as no answer)."""
        return sum(e.error is not None for t in self.tasks.values() for e in t.examples)

    @property
    def macro_average(self) -> float:
        """Unweighted mean of the task scores, the paper's "Avg." row."""
        scores = [t.score for t in self.tasks.values()]
        return sum(scores) / len(scores) if scores else 0.0

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = self.model_dump(mode="json") | {"macro_average": self.macro_average}
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        """Read a saved report (the derived ``macro_average`` field is ignored)."""
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def to_markdown(self) -> str:
        rows = [f"| {t.title} | {t.metric} | {t.score:.2f} | {t.n} |" for t in self.tasks.values()]
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
                "| Task | Metric | Score | N |",
                "|---|---|---:|---:|",
                *rows,
                f"| **Avg.** | macro | **{self.macro_average:.2f}** | |",
                *breakdowns,
                *(
                    [f"\n{self.errors} item(s) exceeded the model's context: scored as no answer."]
                    if self.errors
                    else []
                ),
            ]
        )
