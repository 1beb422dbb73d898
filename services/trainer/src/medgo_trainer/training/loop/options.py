"""What one loop run is asked to do, and how it refuses."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


class LoopError(ValueError):
    """A reason the loop stops before spending compute (or cannot evaluate)."""


@dataclass(frozen=True)
class LoopOptions:
    """One run's choices; the CLI flags map onto these one to one."""

    recipe: str = "medgo-tiny-dpo"
    overrides: tuple[str, ...] = ()
    min_pairs: int = 16
    since: str | None = None
    until: str | None = None
    min_raters: int | None = None
    checkpoint_id: str | None = None
    id_prefix: str = "medgo-tiny"
    # care-advice: the behaviour clinicians rate for; limit: the default gate's min_n
    tasks: tuple[str, ...] = ("safety", "mcq-cmexam", "kuake-qic", "care-advice")
    limit: int = 100
    max_tokens: int | None = 64
    seed: int = 0
    policy: Path | None = None
    serve_settings: dict[str, str] = field(default_factory=dict)
    serve_timeout_s: float = 600.0
    progress: bool = True
    skip_few_pairs: bool = False


def serve_env(opts: LoopOptions) -> dict[str, str]:
    """`--serve-set name=value` as the inference service's environment variables."""
    from medgo_common.schemas.serving import settings_env

    return settings_env(opts.serve_settings)

