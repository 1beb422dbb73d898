"""The inference launcher's one settings class: the only place that reads `MEDGO_INFERENCE_*`.

Local mode and production differ only in these values: medgo-tiny on one CPU uses the
defaults; Qwen2-72B MedGo on 8×A100 sets `tensor_parallel_size=8`, `max_model_len`,
`gpu_memory_utilization` and the manifest (see docs/production.md). Fields left at
`None` / `"auto"` are resolved per device in `resolve.py`, so no default is CPU-only.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Literal

from medgo_common.paths import default_model_dir
from medgo_common.schemas.serving import LORA_RANKS, SERVED_MODEL_NAME, parse_adapters
from medgo_common.startup import LocalModeSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

Device = Literal["auto", "cpu", "cuda"]
Dtype = Literal["auto", "float32", "bfloat16", "float16"]

class InferenceSettings(LocalModeSettings):
    """What to serve and how: where the checkpoint is, and vLLM's capacity knobs."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_INFERENCE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=1, le=65535)

    manifest: Path = Field(
        default_factory=lambda: default_model_dir() / "serving.json",
        description="Serving manifest written by the trainer's promote (ServingManifest).",
    )
    base_model: Path | None = Field(
        default=None,
        description="Explicit base model directory; overrides the manifest when set.",
    )
    adapters: Annotated[dict[str, Path], NoDecode] = Field(
        default_factory=dict,
        description="With base_model: LoRA adapters as `name=path,...` (name = checkpoint id).",
    )
    served_model_name: str = SERVED_MODEL_NAME

    device: Device = Field(
        default="auto", description="auto: CUDA when a GPU is visible to torch, else CPU."
    )
    dtype: Dtype = Field(
        default="auto",
        description="auto: bfloat16 on GPU and on CPUs with AMX, float32 otherwise.",
    )
    tensor_parallel_size: int = Field(default=1, ge=1, le=64)
    max_model_len: int | None = Field(
        default=None, ge=16, description="Context length; None = the model's own limit."
    )
    max_num_seqs: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="Sequences per engine step (the bounded queue); None = 16 CPU / 256 GPU.",
    )
    max_lora_rank: int = 16
    max_loras: int = Field(
        default=2, ge=1, le=64,
        description="LoRAs active in one batch: 2 lets the stable and the canary share one.",
    )
    gpu_memory_utilization: float = Field(default=0.90, gt=0.0, le=1.0)
    cpu_kvcache_gib: int = Field(default=1, ge=1, description="VLLM_CPU_KVCACHE_SPACE (GiB).")
    cpu_omp_threads_bind: str = Field(
        default="auto",
        min_length=1,
        description="VLLM_CPU_OMP_THREADS_BIND: cores for the CPU worker, e.g. `0-1`.",
    )
    api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key vLLM requires on /v1 (handed over as VLLM_API_KEY, never "
        "argv); empty = none (local default). The gateway sends it.",
    )
    watch_manifest: bool = Field(
        default=True,
        description="Keep vLLM's LoRA adapters in step with the manifest at run time.",
    )
    manifest_poll_s: float = Field(
        default=1.0, gt=0, le=60, description="How often the manifest file is re-read."
    )
    unload_grace_s: float = Field(
        default=10.0, ge=0, le=600,
        description="Wait between loading a manifest's new adapters and unloading the "
        "dropped ones, so every gateway has switched first (> gateway manifest_poll_s + "
        "replica_refresh_s).",
    )
    status_port: int = Field(
        default=8011, ge=0, le=65535,
        description="Port of the launcher's /status (adapter sync, JSON) and /metrics; "
        "0 = off.",
    )
    otlp_traces_endpoint: str = Field(
        default="",
        description="OpenTelemetry collector (OTLP/HTTP) base URL: vLLM exports its request "
        "spans to `<url>/v1/traces`, continuing the gateway's trace. Empty: tracing off.",
    )
    extra_args: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Further vLLM flags, shell-quoted, appended last (they win).",
    )

    @field_validator("adapters", mode="before")
    @classmethod
    def _parse_adapters(cls, value: object) -> object:
        """`name=path,name2=path2` (the env form, `ServeRequest`'s) → mapping."""
        return parse_adapters(value) if isinstance(value, str) else value

    @field_validator("api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return value or None

    @field_validator("extra_args", mode="before")
    @classmethod
    def _split_extra_args(cls, value: object) -> object:
        return shlex.split(value) if isinstance(value, str) else value

    @field_validator("max_lora_rank")
    @classmethod
    def _known_rank(cls, value: int) -> int:
        if value not in LORA_RANKS:
            raise ValueError(f"must be one of {', '.join(map(str, LORA_RANKS))}")
        return value
