"""`GET /v1/stats/canary-gate` and `POST /v1/stats/canary-gate/overrides`: the online gate.

The GET evaluates the rule (online_gate.py) for a stable/candidate pair on the
ratings so far and refreshes the `medgo_feedback_gate_*` gauges; the watch command
of a rollout calls it. The POST records that ops go to 100 % whatever the verdict,
with a reason (kept in `gate_overrides`); later evaluations then report `passed`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from medgo_feedback.canary_gate import evaluate_gate, record_override
from medgo_feedback.deps import CallerDep, MetricsDep, SessionDep, SettingsDep, scoped
from medgo_feedback.metrics import FeedbackMetrics
from medgo_feedback.online_gate import GateResult, GateRule
from medgo_feedback.scopes import GATE_OVERRIDE, STATS_READ

router = APIRouter(prefix="/v1/stats/canary-gate", tags=["stats"])

Checkpoint = Annotated[str, Query(min_length=1, max_length=128)]


class OverrideIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stable: str = Field(min_length=1, max_length=128)
    candidate: str = Field(min_length=1, max_length=128)
    reason: str = Field(min_length=3, max_length=2000, description="why the gate is overridden")
    actor: str = Field(min_length=1, max_length=128, description="who decided (ops name)")
    since: AwareDatetime | None = None


class OverrideOut(BaseModel):
    id: int
    created_at: datetime
    actor: str
    reason: str
    result: GateResult


def _publish(metrics: FeedbackMetrics, result: GateResult) -> None:
    for arm_name, arm in (("stable", result.stable), ("candidate", result.candidate)):
        metrics.gate_ratings.labels(arm.checkpoint, arm_name).set(arm.ratings)
        if arm.acceptance_rate is not None:
            metrics.gate_acceptance.labels(arm.checkpoint, arm_name).set(arm.acceptance_rate)
    pair = (result.stable.checkpoint, result.candidate.checkpoint)
    for bound, value in (("estimate", result.difference), ("low", result.low),
                         ("high", result.high)):
        if value is not None:
            metrics.gate_difference.labels(*pair, bound).set(value)
    metrics.gate_passed.labels(*pair).set(1 if result.passed else 0)


@router.get("", response_model=GateResult, dependencies=[scoped(STATS_READ)])
def get_canary_gate(
    session: SessionDep, settings: SettingsDep, metrics: MetricsDep,
    stable: Checkpoint, candidate: Checkpoint,
    margin: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    min_ratings: Annotated[int | None, Query(ge=1)] = None,
    confidence: Annotated[float | None, Query(gt=0.5, lt=1.0)] = None,
    since: AwareDatetime | None = None,
) -> GateResult:
    """Canary vs stable acceptance with Newcombe's interval, and the rule's verdict."""
    rule = GateRule(
        margin=settings.gate_margin if margin is None else margin,
        min_ratings=min_ratings or settings.gate_min_ratings,
        confidence=confidence or settings.gate_confidence,
    )
    result = evaluate_gate(
        session=session, stable=stable, candidate=candidate, rule=rule, since=since
    )
    _publish(metrics, result)
    return result


@router.post(
    "/overrides", status_code=201, response_model=OverrideOut,
    dependencies=[scoped(GATE_OVERRIDE)],
)
def override_canary_gate(
    body: OverrideIn, session: SessionDep, settings: SettingsDep, caller: CallerDep,
) -> OverrideOut:
    """Record that ops go to 100 % whatever the verdict, with who and why."""
    rule = GateRule(margin=settings.gate_margin, min_ratings=settings.gate_min_ratings,
                    confidence=settings.gate_confidence)
    result = evaluate_gate(session=session, stable=body.stable, candidate=body.candidate,
                           rule=rule, since=body.since)
    row = record_override(session=session, result=result, reason=body.reason,
                          actor=f"{body.actor} (via {caller})")
    session.commit()
    result = result.model_copy(update={"passed": True, "override_reason": row.reason})
    return OverrideOut(id=row.id, created_at=row.created_at, actor=row.actor, reason=row.reason,
                       result=result)
