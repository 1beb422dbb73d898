"""The DeepSpeed JSON of a recipe, checked against its training arguments before compute.

Hugging Face's Trainer fills the DeepSpeed config's `"auto"` values from the training
arguments and reports a contradiction (DeepSpeed says bf16, the arguments say fp16; a
different micro-batch, accumulation, clipping or optimizer setting) only inside
`deepspeed_init`, after the model is loaded — minutes into a 72B job, on every rank.
`check_deepspeed` compares the same pairs statically, when the recipe is loaded.

`resolve_deepspeed` also fills the one value a launch decides: ZeRO++'s hierarchical
partition size, `"auto"` in the packaged config, becomes the number of ranks per node
(torchrun's `LOCAL_WORLD_SIZE`, one per GPU), so each node keeps a secondary copy of
the weights and ZeRO-3's per-layer all-gathers stay on NVLink instead of crossing the
pod network (ZeRO++ paper, section 3.2).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from medgo_trainer.configfile import ConfigError


class DeepSpeedConfigError(ConfigError):
    """The DeepSpeed config cannot be read or contradicts the training arguments."""

#: DeepSpeed config key → the training argument(s) it must agree with (HF's own pairs).
_PAIRS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("train_micro_batch_size_per_gpu", ("per_device_train_batch_size",)),
    ("gradient_accumulation_steps", ("gradient_accumulation_steps",)),
    ("gradient_clipping", ("max_grad_norm",)),
    ("optimizer.params.lr", ("learning_rate",)),
    ("optimizer.params.betas", ("adam_beta1", "adam_beta2")),
    ("optimizer.params.eps", ("adam_epsilon",)),
    ("optimizer.params.weight_decay", ("weight_decay",)),
    ("scheduler.params.warmup_max_lr", ("learning_rate",)),
)
HPZ = "zero_hpz_partition_size"


def load_deepspeed(value: str | dict[str, Any]) -> dict[str, Any]:
    """The DeepSpeed config a recipe names (a JSON path, or the mapping itself)."""
    if isinstance(value, dict):
        return value
    try:
        config = json.loads(Path(value).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DeepSpeedConfigError(
            f"trl.deepspeed: cannot load DeepSpeed config {value}: {exc}") from exc
    if not isinstance(config, dict):
        raise DeepSpeedConfigError(f"trl.deepspeed: {value} must hold a JSON object")
    return config


def zero_stage(config: dict[str, Any]) -> int:
    return int((config.get("zero_optimization") or {}).get("stage", 0))


def _lookup(config: dict[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _enabled(config: dict[str, Any], key: str) -> Any:
    section = config.get(key)
    return section.get("enabled") if isinstance(section, dict) else None


def check_deepspeed(config: dict[str, Any], args: Any, declared: dict[str, Any],
                    source: str) -> None:
    """
    Raise `DeepSpeedConfigError` naming both sides of the first disagreement between the DeepSpeed
    `config` and the training `args`. Precision and optimizer come from `declared` (the
    recipe's `trl:` block): a CPU dry run constructs `args` without bf16, and TRL turns
    bf16 on unless fp16 is asked for. `"auto"` values always agree.
    """
    fp16 = bool(declared.get("fp16", False))
    bf16 = bool(declared["bf16"]) if declared.get("bf16") is not None else not fp16
    for key, declared in (("bf16", bf16), ("fp16", fp16)):
        value = _enabled(config, key)
        if value not in (None, "auto") and bool(value) != declared:
            raise DeepSpeedConfigError(
                f"trl.deepspeed: {source} sets {key}.enabled={value} but the training "
                f"arguments set {key}={declared}; make them agree (or write \"auto\" in the "
                "DeepSpeed config)")
    for key, names in _PAIRS:
        value = _lookup(config, key)
        if value is None or value == "auto":
            continue
        wanted = [getattr(args, name) for name in names]
        given = list(value) if isinstance(value, list | tuple) else [value]
        if len(given) != len(wanted) or any(
                float(g) != float(w) for g, w in zip(given, wanted, strict=True)):
            shown = wanted[0] if len(wanted) == 1 else wanted
            raise DeepSpeedConfigError(
                f"trl.deepspeed: {source} sets {key}={value} but the training arguments give "
                f"{'/'.join(names)}={shown}; make them agree (or write \"auto\" in the "
                "DeepSpeed config)")
    total = config.get("train_batch_size")
    per_rank = args.per_device_train_batch_size * args.gradient_accumulation_steps
    if total not in (None, "auto") and int(total) % per_rank:
        raise DeepSpeedConfigError(
            f"trl.deepspeed: {source} sets train_batch_size={total}, not a multiple of "
            f"per_device_train_batch_size x gradient_accumulation_steps = {per_rank}")
    zero = config.get("zero_optimization") or {}
    hpz = zero.get(HPZ)
    if hpz not in (None, "auto") and (isinstance(hpz, bool) or not isinstance(hpz, int)
                                      or hpz < 1):
        raise DeepSpeedConfigError(f"trl.deepspeed: {source} {HPZ} must be \"auto\" (ranks per "
                                   f"node) or a positive integer, got {hpz!r}")
    if hpz not in (None, 1) and zero_stage(config) != 3:
        raise DeepSpeedConfigError(
            f"trl.deepspeed: {source} sets {HPZ} (ZeRO++ hierarchical partitioning), which "
            f"needs ZeRO stage 3, not {zero_stage(config)}")
    if "optimizer" in config and "optim" in declared:
        raise DeepSpeedConfigError(f"trl.deepspeed: {source} defines an optimizer and trl.optim="
                                   f"{declared['optim']} names one too; keep one of them")


def resolve_deepspeed(config: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` with ZeRO++'s `"auto"` partition size set to ranks per node."""
    zero = dict(config.get("zero_optimization") or {})
    if zero.get(HPZ) != "auto":
        return config
    per_node = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if per_node > 1:
        zero[HPZ] = per_node
    else:  # one rank per node: nothing to keep node-local
        del zero[HPZ]
    return {**config, "zero_optimization": zero}
