"""The serving manifest: which base model and LoRA adapters inference serves, and the canary.

The trainer's `promote` writes it (locally `var/models/serving.json`; in Kubernetes ops
edit it in the `serving-manifest` ConfigMap). Every inference replica keeps vLLM's loaded
adapters in step with it, and every gateway replica reads the canary weight from it, so
one file is the whole routing state: no replica holds routing in its memory only.

- `adapters[0]` is the **stable** adapter (what `medgo` means); the others are loaded too.
- `canary` (optional) names a **candidate** among `adapters` and the share of
  conversations, in [0, 1], that go to it. Files written before the canary existed (no
  `canary` key) mean "stable only", so every older manifest stays valid.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, Field, model_validator

SERVED_MODEL_NAME = "medgo"

# The ranks vLLM accepts for --max-lora-rank. Inference checks its setting against them
# at start-up; the trainer rounds a served adapter's rank up to one of them.
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)


class AdapterRef(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    path: str


class Canary(BaseModel):
    """A candidate adapter served to `weight` of the conversations (sticky per conversation)."""

    adapter: str = Field(min_length=1, description="name of one of the manifest's adapters")
    weight: float = Field(ge=0.0, le=1.0, description="share of conversations, 0 to 1")


class ServingManifest(BaseModel):
    checkpoint_id: str = Field(min_length=1)
    base_model: str = Field(min_length=1, description="HF model directory or hub-style id")
    adapters: list[AdapterRef] = Field(default_factory=list)
    canary: Canary | None = None
    updated_at: datetime = Field(default_factory=lambda: datetime.now(UTC))

    @model_validator(mode="after")
    def _check_adapters(self) -> ServingManifest:
        names = [a.name for a in self.adapters]
        if len(set(names)) != len(names):
            raise ValueError(f"adapter names must be unique, got {names}")
        if self.canary is not None:
            if self.canary.adapter not in names:
                raise ValueError(f"canary adapter {self.canary.adapter!r} is not one of the "
                                 f"manifest's adapters {names}")
            if self.canary.adapter == names[0]:
                raise ValueError(f"canary adapter {self.canary.adapter!r} is the stable "
                                 "adapter (adapters[0]); name another one")
        return self

    @property
    def stable_adapter(self) -> str | None:
        """What the public name `medgo` maps to; None serves the bare base model."""
        return self.adapters[0].name if self.adapters else None

    @property
    def canary_adapter(self) -> str | None:
        """The candidate while its weight is above 0, else None."""
        return self.canary.adapter if self.canary and self.canary.weight > 0 else None

    @classmethod
    def load(cls, path: Path) -> ServingManifest:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))

    def save(self, path: Path) -> None:
        """Atomic replace, so a launcher never reads a half-written manifest."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        data = self.model_dump(mode="json", exclude_none=True)
        tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
        tmp.replace(path)


def read_manifest(path: Path) -> tuple[str, ServingManifest]:
    """(content hash, manifest) of the file at `path`, following symlinks.

    Watchers compare the hash, not the mtime: a Kubernetes ConfigMap volume updates a
    file by swapping the `..data` symlink to a new directory, which leaves the mtime of
    the path itself meaningless, and hashing a few hundred bytes costs nothing.
    Raises OSError, UnicodeDecodeError or pydantic's ValidationError.
    """
    raw = path.read_bytes()
    return hashlib.sha256(raw).hexdigest()[:16], ServingManifest.model_validate_json(raw)


# --- The trainer → inference process contract --------------------------------------
# Besides the manifest, the trainer starts `medgo-inference` itself: the feedback loop
# serves a baseline and a candidate adapter on a temporary vLLM (a child process
# locally, a sidecar container in the Kubernetes evaluation Job) and configures it only
# through the inference service's environment variables. `ServeRequest` is that
# contract written down: the trainer builds one and calls `to_env()`; inference parses
# `MEDGO_INFERENCE_ADAPTERS` with the same `parse_adapters`, and its tests check that
# every variable a request can produce is a field of `InferenceSettings`.

INFERENCE_ENV_PREFIX = "MEDGO_INFERENCE_"


def parse_adapters(value: str) -> dict[str, str]:
    """`name=path,name2=path2` (the environment form of the adapters) → a mapping."""
    parsed: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        name, sep, path = item.partition("=")
        if not sep or not name.strip() or not path.strip():
            raise ValueError(f"adapter {item!r} is not `name=path`")
        if name.strip() in parsed:
            raise ValueError(f"adapter name {name.strip()!r} appears twice")
        parsed[name.strip()] = path.strip()
    return parsed


def format_adapters(adapters: dict[str, str]) -> str:
    """The inverse of `parse_adapters`."""
    return ",".join(f"{name}={path}" for name, path in adapters.items())


class ServeRequest(BaseModel):
    """What the trainer asks `medgo-inference` to serve: a base, named adapters, the
    LoRA rank to reserve, and further inference settings by field name (the loop's
    `--serve-set name=value`), which win over the fields above."""

    base_model: str = Field(min_length=1)
    adapters: dict[str, str] = Field(default_factory=dict)
    max_lora_rank: int = 16
    settings: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def for_adapters(cls, base_model: str, adapters: dict[str, str], ranks: list[int],
                     settings: dict[str, str] | None = None) -> ServeRequest:
        """Reserve the largest adapter's rank, rounded up to one vLLM accepts."""
        needed = max(ranks, default=1)
        fits = [r for r in LORA_RANKS if r >= needed]
        if not fits:
            raise ValueError(f"adapter rank {needed} exceeds vLLM's largest, {LORA_RANKS[-1]}")
        return cls(base_model=base_model, adapters=adapters, max_lora_rank=fits[0],
                   settings=settings or {})

    def to_env(self) -> dict[str, str]:
        """The `MEDGO_INFERENCE_*` variables that configure the child process."""
        env = {
            f"{INFERENCE_ENV_PREFIX}BASE_MODEL": self.base_model,
            f"{INFERENCE_ENV_PREFIX}ADAPTERS": format_adapters(self.adapters),
            f"{INFERENCE_ENV_PREFIX}MAX_LORA_RANK": str(self.max_lora_rank),
        }
        return env | settings_env(self.settings)


def settings_env(settings: dict[str, str]) -> dict[str, str]:
    """Inference settings by field name (`max_model_len=512`) → environment variables."""
    return {f"{INFERENCE_ENV_PREFIX}{name.upper()}": value for name, value in settings.items()}
