"""The promotion gate: may a candidate checkpoint replace the promoted one?

A non-inferiority test per task, the standard design when a new treatment must be
shown not worse than the current one by more than a margin: the lower bound of the
paired bootstrap confidence interval of candidate − baseline must lie above
−margin. A candidate that only loses items fails even when no drop is "proven"
(N = 50, three items lost, none gained: CI [−12, 0], below −2). Below a minimum
number of paired items per task the interval says nothing useful, so the gate
refuses to decide that task, says so, and does not pass the candidate.

The trainer's promote step calls `evaluate_gate(candidate, baseline, policy)` with
two reports of the same tasks, limit and seed. The policy (YAML, see
``policies/default.yaml``) sets the margins and the minimum N. Unknown keys and task
names the catalogue does not know are errors, so a typo cannot switch a rule off.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from medgo_trainer.evaluation.catalog import TASK_NAMES
from medgo_trainer.evaluation.compare import Comparison, TaskDelta, compare
from medgo_trainer.evaluation.report import EvalReport

DEFAULT_POLICY = Path(__file__).parent / "policies" / "default.yaml"
Verdict = Literal["pass", "fail", "undecided"]


class GatePolicy(BaseModel):
    """Margins in points (0-100). See policies/default.yaml for each rule's meaning."""

    model_config = ConfigDict(extra="forbid")

    margin_points: float = Field(default=2.0, ge=0)
    task_margins: dict[str, float] = Field(default_factory=dict)
    min_n: int = Field(default=100, ge=1)
    confidence: float = Field(default=0.95, gt=0, lt=1)
    bootstrap_samples: int = Field(default=1000, ge=100)
    seed: int = 0
    required_tasks: list[str] = Field(default_factory=list)
    require_all_baseline_tasks: bool = True

    @model_validator(mode="after")
    def _known_tasks(self) -> GatePolicy:
        named = [*self.task_margins, *self.required_tasks]
        unknown = sorted({t for t in named if t not in TASK_NAMES})
        if unknown:
            raise ValueError(
                f"gate policy names unknown task(s) {', '.join(unknown)}; "
                f"known: {', '.join(TASK_NAMES)}"
            )
        if any(m < 0 for m in self.task_margins.values()):
            raise ValueError("task_margins must be 0 or more points")
        return self

    def margin(self, task: str) -> float:
        return self.task_margins.get(task, self.margin_points)

    @classmethod
    def load(cls, path: Path = DEFAULT_POLICY) -> GatePolicy:
        """Read a policy file; raises ValueError on unknown keys, tasks or bad values."""
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a policy is a YAML mapping")
        try:
            return cls.model_validate(data)
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from exc


@dataclass(frozen=True)
class TaskVerdict:
    """The gate's decision on one task, with the figures it rests on."""

    task: str
    verdict: Verdict
    baseline: float
    candidate: float
    delta: float
    ci_low: float
    ci_high: float
    n: int
    margin: float
    reason: str


@dataclass(frozen=True)
class GateDecision:
    """``passed`` is the verdict; ``reasons`` says why, one line per task that failed or
    could not be decided (or one line saying all passed); ``verdicts`` is the per-task
    decision table and ``comparison`` the figures behind it. The registry's gates
    (first promotion, adopting the served checkpoint) return this same type."""

    passed: bool
    reasons: list[str] = field(default_factory=list)
    verdicts: list[TaskVerdict] = field(default_factory=list, compare=False)
    comparison: Comparison | None = field(default=None, compare=False)

    def to_markdown(self) -> str:
        """The per-task decision table, then the verdict and its reasons."""
        lines = [
            "| Task | Baseline | Candidate | Δ | CI | N | margin | decision |",
            "|---|---:|---:|---:|---|---:|---:|---|",
        ]
        lines += [
            f"| {v.task} | {v.baseline:.2f} | {v.candidate:.2f} | {v.delta:+.2f} | "
            f"[{v.ci_low:+.2f}, {v.ci_high:+.2f}] | {v.n} | {v.margin:g} | {v.verdict} |"
            for v in self.verdicts
        ]
        lines.append(f"\n{'PASSED' if self.passed else 'FAILED'}")
        lines += [f"- {reason}" for reason in self.reasons]
        return "\n".join(lines)


def _verdict(row: TaskDelta, policy: GatePolicy) -> TaskVerdict:
    margin = policy.margin(row.task)
    change = (
        f"{row.baseline:.2f} → {row.candidate:.2f} "
        f"(Δ {row.delta:+.2f}, CI [{row.ci_low:+.2f}, {row.ci_high:+.2f}], n={row.n_paired})"
    )
    if row.n_paired < policy.min_n:
        verdict: Verdict = "undecided"
        reason = (
            f"{row.task}: only {row.n_paired} paired item(s), fewer than min_n "
            f"{policy.min_n}: the gate refuses to decide (evaluate more items)"
        )
    elif row.ci_low <= -margin:
        verdict = "fail"
        reason = (
            f"{row.task}: {row.metric} may have dropped by more than the margin of "
            f"{margin:g} points: the CI's lower end is not above −{margin:g} {change}"
        )
    else:
        verdict, reason = "pass", f"{row.task}: non-inferior {change}"
    return TaskVerdict(
        task=row.task, verdict=verdict, baseline=row.baseline, candidate=row.candidate,
        delta=row.delta, ci_low=row.ci_low, ci_high=row.ci_high, n=row.n_paired,
        margin=margin, reason=reason,
    )  # fmt: skip


def _setting_mismatches(candidate: EvalReport, baseline: EvalReport) -> list[str]:
    """Runs with different prompts or scoring measure different things: not comparable."""
    return [
        f"reports are not comparable: {name} is {getattr(candidate.run, name)!r} for the "
        f"candidate but {getattr(baseline.run, name)!r} for the baseline"
        for name in ("shots", "scoring", "seed")
        if getattr(candidate.run, name) != getattr(baseline.run, name)
    ]


def evaluate_gate(
    candidate: EvalReport, baseline: EvalReport, policy: GatePolicy | None = None
) -> GateDecision:
    """Apply ``policy`` (default: policies/default.yaml) to candidate vs. baseline."""
    policy = policy or GatePolicy.load()
    comparison = compare(
        candidate,
        baseline,
        samples=policy.bootstrap_samples,
        confidence=policy.confidence,
        seed=policy.seed,
    )
    verdicts = [_verdict(row, policy) for row in comparison.rows]
    reasons = _setting_mismatches(candidate, baseline)
    reasons += [v.reason for v in verdicts if v.verdict != "pass"]
    if policy.require_all_baseline_tasks and comparison.only_in_baseline:
        missing = ", ".join(comparison.only_in_baseline)
        reasons.append(f"candidate was not evaluated on baseline task(s): {missing}")
    compared = {v.task for v in verdicts}
    absent = [t for t in policy.required_tasks if t not in compared]
    if absent:
        reasons.append(f"required task(s) not in both reports: {', '.join(absent)}")
    if not comparison.rows:
        reasons.append("the reports share no task, so nothing was compared")
    if reasons:
        return GateDecision(False, reasons, verdicts, comparison)
    checked = ", ".join(v.task for v in verdicts)
    return GateDecision(True, [f"non-inferior on every task: {checked}"], verdicts, comparison)
