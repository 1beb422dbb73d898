"""Which checkpoint to serve, and with what engine limits: settings + files → `ServePlan`.

The checkpoint comes from the trainer's serving manifest (what `promote` chose) unless
`MEDGO_INFERENCE_BASE_MODEL` names one explicitly. Device-dependent defaults are
settled here, once, so `launcher.build_argv` is a plain translation and the same code
path yields the medgo-tiny CPU plan and the Qwen2-72B 8×A100 plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medgo_common.schemas.serving import AdapterRef, ServingManifest
from pydantic import ValidationError

from medgo_inference.hardware import Hardware
from medgo_inference.modeldir import AdapterInfo, check_adapter, check_base_model
from medgo_inference.settings import InferenceSettings

# Bounded queue per engine step. CPU: a 2-core box gains nothing past a few dozen
# sequences and each one holds KV cache; GPU: vLLM's own default for A100-class cards.
DEFAULT_MAX_NUM_SEQS = {"cpu": 16, "cuda": 256}
# vLLM's CPU attention kernels need head_dim >= 32 (DESIGN.md machine notes).
MIN_CPU_HEAD_DIM = 32


class PlanError(Exception):
    """A start-up condition the operator must fix; the message is one line."""


@dataclass(frozen=True)
class ServePlan:
    """Everything vLLM needs to know about the model it serves, fully resolved."""

    checkpoint_id: str
    base_model: Path
    adapters: tuple[AdapterInfo, ...]
    served_model_name: str
    device: Literal["cpu", "cuda"]
    dtype: str
    tensor_parallel_size: int
    max_model_len: int | None
    max_num_seqs: int
    max_lora_rank: int
    max_loras: int
    gpu_memory_utilization: float
    # The manifest the launcher follows at run time (adapters loaded and unloaded without
    # a restart); None when the checkpoint was given explicitly or watching is off.
    watched_manifest: Path | None = None

    @property
    def default_adapter(self) -> str | None:
        """The manifest's first adapter: what the gateway maps `medgo` to."""
        return self.adapters[0].name if self.adapters else None


@dataclass(frozen=True)
class _Source:
    checkpoint_id: str
    base_model: Path
    adapters: tuple[tuple[str, Path], ...]


def _source(settings: InferenceSettings) -> _Source:
    """Explicit settings win; otherwise the manifest. Relative paths are manifest-relative."""
    if settings.base_model is not None:
        adapters = tuple(settings.adapters.items())
        for name, adapter_path in adapters:
            try:
                AdapterRef(name=name, path=str(adapter_path))
            except ValidationError:
                raise PlanError(f"adapter name {name!r} in MEDGO_INFERENCE_ADAPTERS is not a "
                                "valid checkpoint id (letters, digits, . _ -)") from None
        checkpoint = adapters[0][0] if adapters else settings.base_model.name
        return _Source(checkpoint, settings.base_model, adapters)
    if settings.adapters:
        raise PlanError("MEDGO_INFERENCE_ADAPTERS needs MEDGO_INFERENCE_BASE_MODEL as well "
                        "(or put the adapters in the serving manifest)")
    path = settings.manifest
    if not path.is_file():
        raise PlanError(f"no checkpoint to serve: serving manifest {path} not found; build "
                        "medgo-tiny (`medgo-train build-tiny`), set MEDGO_INFERENCE_MANIFEST, "
                        "or set MEDGO_INFERENCE_BASE_MODEL")
    try:
        manifest = ServingManifest.load(path)
    except (OSError, UnicodeDecodeError, ValidationError) as exc:
        first = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise PlanError(f"serving manifest {path} is invalid ({first}); re-run the trainer's "
                        "promote or fix the file") from None
    root = path.parent
    return _Source(
        manifest.checkpoint_id,
        root / manifest.base_model,
        tuple((a.name, root / a.path) for a in manifest.adapters),
    )


def _check_parallelism(config: dict[str, Any], tp: int, base: Path) -> None:
    heads = config.get("num_attention_heads")
    if isinstance(heads, int) and heads % tp:
        raise PlanError(f"tensor_parallel_size {tp} does not divide the {heads} attention "
                        f"heads of {base}; set MEDGO_INFERENCE_TENSOR_PARALLEL_SIZE to a divisor")


def _check_cpu_head_dim(config: dict[str, Any], base: Path) -> None:
    heads, hidden = config.get("num_attention_heads"), config.get("hidden_size")
    head_dim = config.get("head_dim") or (hidden // heads if heads and hidden else None)
    if isinstance(head_dim, int) and head_dim < MIN_CPU_HEAD_DIM:
        raise PlanError(f"{base} has head_dim {head_dim}; vLLM on CPU needs at least "
                        f"{MIN_CPU_HEAD_DIM} (serve it on a GPU or rebuild with larger heads)")


def _check_max_len(config: dict[str, Any], max_len: int | None, base: Path) -> None:
    limit = config.get("max_position_embeddings")
    if max_len is not None and isinstance(limit, int) and max_len > limit:
        raise PlanError(f"max_model_len {max_len} exceeds the {limit} positions of {base}; "
                        f"lower MEDGO_INFERENCE_MAX_MODEL_LEN")


def resolve_plan(settings: InferenceSettings, hardware: Hardware) -> ServePlan:
    """Validate the checkpoint on disk against the settings and the machine."""
    source = _source(settings)
    config = check_base_model(source.base_model)
    adapters = tuple(
        check_adapter(name, path, settings.max_lora_rank) for name, path in source.adapters
    )
    if settings.served_model_name in {a.name for a in adapters}:
        raise PlanError(f"adapter name {settings.served_model_name!r} collides with the served "
                        "base model name; rename the adapter")
    auto_device = "cuda" if hardware.cuda else "cpu"
    device = auto_device if settings.device == "auto" else settings.device
    if device == "cuda" and not hardware.cuda:
        raise PlanError("MEDGO_INFERENCE_DEVICE=cuda but torch sees no CUDA GPU; install the "
                        "CUDA build (docs/production.md) or set MEDGO_INFERENCE_DEVICE=cpu")
    dtype = settings.dtype
    if dtype == "auto":
        fast_bf16 = device == "cuda" or hardware.cpu_fast_bf16
        dtype = "bfloat16" if fast_bf16 else "float32"
    _check_parallelism(config, settings.tensor_parallel_size, source.base_model)
    _check_max_len(config, settings.max_model_len, source.base_model)
    if device == "cpu":
        _check_cpu_head_dim(config, source.base_model)
    return ServePlan(
        checkpoint_id=source.checkpoint_id,
        base_model=source.base_model,
        adapters=adapters,
        served_model_name=settings.served_model_name,
        device=device,
        dtype=dtype,
        tensor_parallel_size=settings.tensor_parallel_size,
        max_model_len=settings.max_model_len,
        max_num_seqs=settings.max_num_seqs or DEFAULT_MAX_NUM_SEQS[device],
        max_lora_rank=settings.max_lora_rank,
        max_loras=settings.max_loras,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        watched_manifest=settings.manifest
        if settings.base_model is None and settings.watch_manifest
        else None,
    )
