"""The evaluation wing's settings: the only place `medgo-eval` reads the environment.

Evaluation runs on its own against any OpenAI-compatible endpoint, without the rest of
the trainer, so it has its own small settings class instead of `TrainerSettings`. The
data folder is the trainer's (`MEDGO_TRAINER_DATA_DIR`, as README documents) unless
`MEDGO_EVAL_DATA_DIR` says otherwise.
"""

from __future__ import annotations

from pathlib import Path

from medgo_common.paths import default_data_dir, default_var_dir
from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class EvalSettings(BaseSettings):
    """Where the benchmark data lives, where answers are cached, and the endpoint's key."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_EVAL_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        validation_alias=AliasChoices("MEDGO_EVAL_DATA_DIR", "MEDGO_TRAINER_DATA_DIR"),
        description="Bundled public data (CBLUE, exam and safety sets); read-only.",
    )
    cache_dir: Path = Field(
        default_factory=lambda: default_var_dir() / "eval-cache",
        description="Response cache that makes runs resumable.",
    )
    api_key: SecretStr | None = Field(
        default=None, description="Bearer key of the endpoint (gateway key or vLLM's key)."
    )
