"""Comparing two runs: per-task deltas with paired bootstrap confidence intervals.

Both runs must have scored the same examples (same data, limit and seed); examples
are paired by id and only pairs present in both count. Each bootstrap replicate
resamples the paired examples with replacement and recomputes *both* corpus
metrics on the same resample (Koehn 2004, paired bootstrap resampling), so the
interval reflects how much the delta depends on which examples were drawn. The
seed is fixed: the same two reports always give the same interval.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import BaseModel

from medgo_trainer.evaluation.metrics import aggregate, sufficient_stats
from medgo_trainer.evaluation.report import EvalReport, TaskResult

_CHUNK = 100  # bootstrap replicates per matrix product (bounds memory at 100 × n)


class TaskDelta(BaseModel):
    task: str
    title: str
    metric: str
    baseline: float  # both scores are on the paired examples only
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    n_paired: int


class Comparison(BaseModel):
    confidence: float
    rows: list[TaskDelta]
    only_in_baseline: list[str]
    only_in_candidate: list[str]

    def to_markdown(self) -> str:
        pct = round(self.confidence * 100)
        lines = [
            f"| Task | Metric | Baseline | Candidate | Δ | {pct}% CI | N |",
            "|---|---|---:|---:|---:|---|---:|",
        ]
        lines += [
            f"| {r.title} | {r.metric} | {r.baseline:.2f} | {r.candidate:.2f} | "
            f"{r.delta:+.2f} | [{r.ci_low:+.2f}, {r.ci_high:+.2f}] | {r.n_paired} |"
            for r in self.rows
        ]
        for label, names in (
            ("baseline", self.only_in_baseline),
            ("candidate", self.only_in_candidate),
        ):
            if names:
                lines.append(f"\nOnly in the {label}: {', '.join(names)}")
        return "\n".join(lines)


def paired_bootstrap(
    kind: str,
    baseline: list[Any],
    candidate: list[Any],
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float, float]:
    """(delta, ci_low, ci_high) of candidate minus baseline over paired units.

    A replicate draws n item indices with replacement; ``counts @ stats`` gives both
    runs' statistic sums for that draw (see `metrics.sufficient_stats`).
    """
    if len(baseline) != len(candidate):
        raise ValueError("paired bootstrap needs the same number of units on both sides")
    n = len(baseline)
    if n == 0:
        return 0.0, 0.0, 0.0
    # Each side keeps its own finish: macro-F1's label columns depend on what that side
    # predicted, and a replicate must score both exactly as the report scores them.
    base_stats, base_finish = sufficient_stats(kind, baseline)
    cand_stats, cand_finish = sufficient_stats(kind, candidate)
    delta = 100.0 * (cand_finish(cand_stats.sum(0)) - base_finish(base_stats.sum(0)))
    rng = np.random.default_rng(seed)
    deltas = np.empty(samples)
    for start in range(0, samples, _CHUNK):
        rows = min(_CHUNK, samples - start)
        draws = rng.integers(0, n, size=(rows, n))
        counts = np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)
        for i, (b, c) in enumerate(zip(counts @ base_stats, counts @ cand_stats, strict=True)):
            deltas[start + i] = 100.0 * (cand_finish(c) - base_finish(b))
    deltas.sort()
    tail = (1 - confidence) / 2
    low = float(deltas[math.floor(tail * (samples - 1))])
    high = float(deltas[math.ceil((1 - tail) * (samples - 1))])
    return delta, low, high


def _task_delta(
    base: TaskResult, cand: TaskResult, samples: int, confidence: float, seed: int
) -> TaskDelta:
    cand_units = {e.id: e.unit for e in cand.examples}
    ids = [e.id for e in base.examples if e.id in cand_units]
    base_units = {e.id: e.unit for e in base.examples}
    b = [base_units[i] for i in ids]
    c = [cand_units[i] for i in ids]
    delta, low, high = paired_bootstrap(
        base.kind, b, c, samples=samples, confidence=confidence, seed=seed
    )
    return TaskDelta(
        task=base.task,
        title=base.title,
        metric=base.metric,
        baseline=aggregate(base.kind, b),
        candidate=aggregate(base.kind, c),
        delta=delta,
        ci_low=low,
        ci_high=high,
        n_paired=len(ids),
    )


def compare(
    candidate: EvalReport,
    baseline: EvalReport,
    *,
    samples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Per-task deltas (candidate − baseline) for the tasks both reports contain."""
    shared = [name for name in baseline.tasks if name in candidate.tasks]
    rows = [
        _task_delta(baseline.tasks[name], candidate.tasks[name], samples, confidence, seed)
        for name in shared
    ]
    return Comparison(
        confidence=confidence,
        rows=rows,
        only_in_baseline=[n for n in baseline.tasks if n not in candidate.tasks],
        only_in_candidate=[n for n in candidate.tasks if n not in baseline.tasks],
    )
