"""The online gate: is the canary's acceptance by clinicians non-inferior to stable's?

While a candidate adapter serves a share of conversations, clinicians rate both its
answers and the stable adapter's. Each arm's acceptance rate is a binomial
proportion, reported with its Wilson score interval (Wilson 1927), which keeps its
coverage for small counts and rates near 0 or 1 where the Wald interval fails.

The difference candidate − stable gets Newcombe's hybrid score interval (Newcombe
1998, "Interval estimation for the difference between independent proportions",
Statistics in Medicine 17:873-890, method 10), built from the two Wilson intervals:

    L = d − sqrt((p_c − l_c)² + (u_s − p_s)²)
    U = d + sqrt((u_c − p_c)² + (p_s − l_s)²)

The rule (non-inferiority with a margin): the candidate may go to 100 % when both
arms have at least `min_ratings` ratings and the lower bound L of the two-sided
`confidence` interval is above −`margin`. With the default 95 % two-sided interval
this is a one-sided test at 2.5 %: "we are 97.5 % sure the candidate's acceptance
is at most `margin` below stable's". Too few ratings is its own verdict, never a
pass. Ops may override a verdict with a reason, which is recorded (`gate_overrides`).
"""

from __future__ import annotations

import math
from enum import StrEnum
from statistics import NormalDist

from pydantic import BaseModel, Field

METHOD = "newcombe-hybrid-score (Wilson score intervals per arm)"


class Verdict(StrEnum):
    non_inferior = "non_inferior"  # passes the rule
    not_shown = "not_shown"  # enough ratings, but the lower bound is below −margin
    insufficient_ratings = "insufficient_ratings"


class GateRule(BaseModel):
    """The documented rule; defaults come from `FeedbackSettings`."""

    margin: float = Field(ge=0.0, le=1.0, description="largest acceptable loss in acceptance")
    min_ratings: int = Field(ge=1, description="ratings each arm needs before any verdict")
    confidence: float = Field(gt=0.5, lt=1.0, description="two-sided level of the intervals")


class Arm(BaseModel):
    checkpoint: str
    ratings: int
    acceptable: int
    acceptance_rate: float | None
    low: float | None = Field(description="Wilson lower bound")
    high: float | None = Field(description="Wilson upper bound")


class GateResult(BaseModel):
    stable: Arm
    candidate: Arm
    difference: float | None = Field(description="candidate − stable acceptance rate")
    low: float | None = Field(description="lower bound of the difference (Newcombe)")
    high: float | None = Field(description="upper bound of the difference (Newcombe)")
    method: str = METHOD
    rule: GateRule
    verdict: Verdict
    passed: bool = Field(description="the verdict passes, or an override was recorded")
    override_reason: str | None = None


def z_value(confidence: float) -> float:
    """The normal quantile of a two-sided interval at `confidence`."""
    return NormalDist().inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson(successes: int, total: int, z: float) -> tuple[float, float]:
    """Wilson score interval of successes/total; needs total ≥ 1."""
    if total < 1 or not 0 <= successes <= total:
        raise ValueError(f"need 0 <= successes <= total and total >= 1, got {successes}/{total}")
    p = successes / total
    z2 = z * z
    denominator = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / total + z2 / (4 * total * total))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(
    candidate: tuple[int, int], stable: tuple[int, int], z: float
) -> tuple[float, float, float]:
    """(difference, low, high) for p_candidate − p_stable, each given as (successes, total)."""
    (kc, nc), (ks, ns) = candidate, stable
    pc, ps = kc / nc, ks / ns
    lc, uc = wilson(kc, nc, z)
    ls, us = wilson(ks, ns, z)
    d = pc - ps
    low = d - math.sqrt((pc - lc) ** 2 + (us - ps) ** 2)
    high = d + math.sqrt((uc - pc) ** 2 + (ps - ls) ** 2)
    return d, low, high


def _arm(checkpoint: str, counts: tuple[int, int], z: float) -> Arm:
    acceptable, ratings = counts
    if ratings == 0:
        return Arm(checkpoint=checkpoint, ratings=0, acceptable=0, acceptance_rate=None,
                   low=None, high=None)
    low, high = wilson(acceptable, ratings, z)
    return Arm(checkpoint=checkpoint, ratings=ratings, acceptable=acceptable,
               acceptance_rate=acceptable / ratings, low=low, high=high)


def evaluate(
    *, stable: str, candidate: str, counts: dict[str, tuple[int, int]], rule: GateRule,
    override_reason: str | None = None,
) -> GateResult:
    """Apply the rule to (acceptable, ratings) counts per checkpoint."""
    z = z_value(rule.confidence)
    arms = {name: _arm(name, counts.get(name, (0, 0)), z) for name in (stable, candidate)}
    difference = low = high = None
    if arms[stable].ratings and arms[candidate].ratings:
        difference, low, high = newcombe(counts[candidate], counts[stable], z)
    if min(arms[stable].ratings, arms[candidate].ratings) < rule.min_ratings:
        verdict = Verdict.insufficient_ratings
    elif low is not None and low > -rule.margin:
        verdict = Verdict.non_inferior
    else:
        verdict = Verdict.not_shown
    return GateResult(
        stable=arms[stable], candidate=arms[candidate], difference=difference, low=low,
        high=high, rule=rule, verdict=verdict,
        passed=verdict is Verdict.non_inferior or override_reason is not None,
        override_reason=override_reason,
    )
