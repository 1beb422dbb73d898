"""The trainer's one settings class: the only place that reads `MEDGO_TRAINER_*`.

Constructed in `main` (CLI or job API) and passed down, so tests build their own
instance instead of sharing an import-time singleton.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from medgo_common.paths import default_data_dir, default_model_dir, default_var_dir
from medgo_common.service_auth import parse_service_tokens, scopes_validator
from medgo_common.startup import LocalModeSettings
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from medgo_trainer.api.scopes import DEFAULT_SCOPES, KNOWN_SCOPES

#: A Kubernetes extended resource name, `<domain>/<name>` (a device plugin's resource).
_EXTENDED_RESOURCE = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"


class TrainerSettings(LocalModeSettings):
    """Where the trainer reads data and writes models, and how it reaches its peers."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_TRAINER_", extra="ignore")

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Bundled public data (corpus, CBLUE, ...); read-only.",
    )
    model_dir: Path = Field(
        default_factory=default_model_dir,
        description="Built models and checkpoints; holds serving.json for inference.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8003, ge=0, le=65535)
    feedback_url: str = "http://127.0.0.1:8002"
    feedback_token: str = ""
    tiny_seed: int = Field(default=1234, description="Seed of the medgo-tiny build.")
    # Job API (medgo-trainer-api).
    service_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="callers of the job API, as `name=token,...`; none set = nobody gets in",
    )
    service_scopes: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SCOPES),
        description="what each job-API caller may do, as JSON {name: [scope, ...]} "
        "(jobs:write, jobs:read, `*` = all); a caller not listed gets 403",
    )
    recipes_dir: Path | None = Field(
        default=None,
        description="Operator recipes (`<name>.yaml`: training recipes and SFT mixtures) "
        "the job API accepts by name besides the packaged ones; unset = packaged only.",
    )
    jobs_dir: Path = Field(
        default_factory=lambda: default_var_dir() / "trainer" / "jobs",
        description="Job database (jobs.sqlite3), and each job's log and output directory.",
    )
    max_running_jobs: int = Field(default=1, ge=1, description="Local jobs run at once.")
    # Kubernetes executor (medgo-train submit --executor k8s).
    k8s_image: str = "registry.local/medgo/trainer:0.1.0"
    k8s_namespace: str = "medgo"
    inference_api_key: SecretStr | None = Field(
        default=None,
        description="Bearer key of the vLLM the feedback loop evaluates on (Kubernetes: "
                    "Secret inference-api-key); unset for the local temporary server.",
    )
    k8s_inference_image: str = Field(
        default="registry.local/medgo/inference:0.1.0",
        description="vLLM sidecar of the feedback loop's evaluation Job (`loop --executor k8s`).",
    )
    k8s_job_api: Literal["trainjob", "pytorchjob"] = Field(
        default="trainjob",
        description="Training jobs as Kubeflow Trainer v2 TrainJobs, or Training Operator v1 "
                    "PyTorchJobs (clusters still on it).",
    )
    k8s_runtime: str = Field(
        default="medgo-torch-deepspeed",
        description="The TrainingRuntime a TrainJob references (components/training-runtime).",
    )
    k8s_node_resources: dict[str, str] = Field(
        default_factory=dict,
        description='More resources per training node, as JSON, e.g. {"example.com/fpga": '
                    '"1"}; an RDMA device goes in K8S_RDMA_RESOURCE instead.',
    )
    k8s_rdma_resource: str | None = Field(
        default=None, pattern=_EXTENDED_RESOURCE,
        description="RDMA device resource each training node requests, e.g. "
                    "rdma/rdma_shared_device_a (components/infiniband); a PyTorchJob's pods "
                    "then also add IPC_LOCK, which RDMA needs to pin memory (a TrainJob's "
                    "come from the runtime, which the same component patches). Unset = TCP.",
    )
    # Checkpoint registry (training/registry.py).
    registry_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the checkpoint registry: postgresql://... in "
                    "production; unset = SQLite <model_dir>/registry.sqlite3.",
    )
    registry_schema: str = Field(
        default="medgo_registry", pattern=r"^[a-z_][a-z0-9_]{0,62}$",
        description="PostgreSQL schema of the registry's tables (created if missing).",
    )

    _parse_tokens = field_validator("service_tokens", mode="before")(parse_service_tokens)
    _known_scopes = field_validator("service_scopes")(scopes_validator(KNOWN_SCOPES))

    @field_validator("registry_url")
    @classmethod
    def _psycopg_driver(cls, value: str | None) -> str | None:
        """Route PostgreSQL through psycopg 3, whatever scheme the operator pasted."""
        for prefix in ("postgres://", "postgresql://"):
            if value and value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix):]
        return value

    @property
    def serving_manifest(self) -> Path:
        """The contract with inference: `<model_dir>/serving.json`."""
        return self.model_dir / "serving.json"
