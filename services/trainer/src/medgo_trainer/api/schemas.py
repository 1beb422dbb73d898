"""Wire shapes of the job API: what a caller sends, and the public view of a job."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from medgo_trainer.training.executors.local import JOB_STAGES


class JobStatus(StrEnum):
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"
    interrupted = "interrupted"  # the service restarted and the process was gone


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    stage: str = Field(pattern=rf"^({'|'.join(JOB_STAGES)})$",
                       description="a training stage, or build-sft (the SFT data mixture)")
    recipe: str = Field(min_length=1, max_length=128,
                        description="name of a packaged recipe (medgo-tiny-dpo, "
                                    "sft-mixture-default) or of one in "
                                    "MEDGO_TRAINER_RECIPES_DIR; never a path")
    overrides: list[str] = Field(default_factory=list, max_length=64,
                                 description="`key.sub=value` recipe overrides, keys from "
                                             "the job API's allowlist (api/policy.py)")


class JobPublic(BaseModel):
    id: str
    stage: str
    recipe: str
    overrides: list[str]
    status: JobStatus
    created_at: datetime
    finished_at: datetime | None = None
    exit_code: int | None = None
    out_dir: str
    progress: dict[str, int] | None = Field(
        default=None, description="`{step, total}` from the trainer's progress bar")
    submitted_by: str
