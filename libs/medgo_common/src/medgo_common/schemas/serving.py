"""The serving manifest: which checkpoint inference serves.

The trainer's `promote` writes it; the inference launcher reads it. It is the only
contract between the two, so it lives here.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field

SERVED_MODEL_NAME = "medgo"

# The ranks vLLM accepts for --max-lora-rank. Inference checks its setting against them
# at start-up; the trainer rounds a served adapter's rank up to one of them.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterRef(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    path: str


class ServingManifest(BaseModel):
    checkpoint_id: str = Field(min_length=1)
    base_model: str = Field(min_length=1, description="HF model directory or hub-style id")
    adapters: list[AdapterRef] = Field(default_factory=list)
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @classmethod
    def load(cls, path: Path) -> ServingManifest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def save(self, path: Path) -> None:
        """Atomic replace, so a launcher never reads a half-written manifest."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.model_dump(mode="json"), indent=2), encoding="utf-8")
        tmp.replace(path)
