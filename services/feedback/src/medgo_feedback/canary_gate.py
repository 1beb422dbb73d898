"""The online gate on the feedback store: counts per checkpoint, recorded overrides.

`online_gate.py` holds the statistics and the rule; this module feeds it the ratings
of the two checkpoints and remembers when ops overrode it (`gate_overrides`), so a
candidate taken to 100 % against the clinicians' ratings leaves a trace with a reason.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from medgo_feedback.models import GateOverride
from medgo_feedback.online_gate import GateResult, GateRule, evaluate
from medgo_feedback.stats import checkpoint_counts


def latest_override(*, session: Session, stable: str, candidate: str) -> GateOverride | None:
    return session.scalars(
        select(GateOverride)
        .where(GateOverride.stable == stable, GateOverride.candidate == candidate)
        .order_by(GateOverride.created_at.desc(), GateOverride.id.desc())
        .limit(1)
    ).first()


def evaluate_gate(
    *, session: Session, stable: str, candidate: str, rule: GateRule,
    since: datetime | None = None,
) -> GateResult:
    """The gate for this pair now; `passed` also when an override was recorded."""
    counts = checkpoint_counts(session=session, checkpoints=[stable, candidate], since=since)
    override = latest_override(session=session, stable=stable, candidate=candidate)
    return evaluate(
        stable=stable, candidate=candidate, counts=counts, rule=rule,
        override_reason=override.reason if override else None,
    )


def record_override(
    *, session: Session, result: GateResult, reason: str, actor: str
) -> GateOverride:
    """Record that ops go ahead whatever the verdict (the caller commits)."""
    if not reason.strip():
        raise ValueError("an override needs a reason")
    row = GateOverride(
        stable=result.stable.checkpoint, candidate=result.candidate.checkpoint,
        verdict=str(result.verdict), reason=reason.strip(), actor=actor,
        evidence=result.model_dump(mode="json"),
    )
    session.add(row)
    session.flush()
    return row
