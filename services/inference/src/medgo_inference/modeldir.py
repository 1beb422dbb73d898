"""Checks that a model or adapter directory is servable before vLLM spends minutes on it.

vLLM reports a missing tokenizer or a truncated shard deep into start-up, as a long
traceback from a worker process. These checks read only small files (config JSON,
safetensors headers) and fail with one sentence naming the file and the fix.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REBUILD_HINT = "rebuild it (`medgo-train build-tiny`) or point the manifest at a complete copy"
# A safetensors file starts with a little-endian u64 header length, then a JSON header.
_SAFETENSORS_MAX_HEADER = 100 * 1024 * 1024


class ModelDirError(Exception):
    """A model or adapter directory that cannot be served; the message is one line."""


@dataclass(frozen=True)
class AdapterInfo:
    """A LoRA adapter as vLLM will load it."""

    name: str
    path: Path
    rank: int


def _read_json(path: Path, what: str) -> dict[str, Any]:
    if not path.is_file():
        raise ModelDirError(f"{what}: {path} is missing; {REBUILD_HINT}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelDirError(f"{what}: {path} is not valid JSON ({exc}); {REBUILD_HINT}") from None
    if not isinstance(data, dict):
        raise ModelDirError(f"{what}: {path} is not a JSON object; {REBUILD_HINT}")
    return data


def _check_safetensors_header(path: Path) -> None:
    """Parse the header only: catches truncated or overwritten shards in milliseconds."""
    try:
        with path.open("rb") as fh:
            raw_len = fh.read(8)
            (length,) = struct.unpack("<Q", raw_len) if len(raw_len) == 8 else (0,)
            header = fh.read(length) if 0 < length <= _SAFETENSORS_MAX_HEADER else b""
        if len(header) != length or not isinstance(json.loads(header), dict):
            raise ValueError
    except (OSError, ValueError):
        raise ModelDirError(
            f"weights file {path} is corrupt or truncated; {REBUILD_HINT}"
        ) from None


def _check_weights(directory: Path, stem: str, what: str) -> None:
    shards = sorted(directory.glob(f"{stem}*.safetensors"))
    if not shards and not list(directory.glob(f"{stem}*.bin")):
        raise ModelDirError(
            f"{what}: no weights ({stem}*.safetensors or .bin) in {directory}; {REBUILD_HINT}"
        )
    for shard in shards:
        _check_safetensors_header(shard)


def check_base_model(directory: Path) -> dict[str, Any]:
    """Validate a Hugging Face model directory; return its parsed config.json."""
    if not directory.is_dir():
        raise ModelDirError(f"base model directory {directory} does not exist; {REBUILD_HINT}")
    config = _read_json(directory / "config.json", "base model config")
    if not isinstance(config.get("model_type"), str):
        raise ModelDirError(
            f"base model config {directory / 'config.json'} has no model_type; {REBUILD_HINT}"
        )
    _check_weights(directory, "model", "base model")
    has_tokenizer = (directory / "tokenizer.json").is_file() or (
        (directory / "vocab.json").is_file() and (directory / "merges.txt").is_file()
    )
    if not has_tokenizer:
        raise ModelDirError(
            f"base model {directory} has no tokenizer (tokenizer.json, or vocab.json + "
            f"merges.txt); {REBUILD_HINT}"
        )
    return config


def check_adapter(name: str, directory: Path, max_lora_rank: int) -> AdapterInfo:
    """Validate a PEFT LoRA adapter directory against the rank vLLM will reserve."""
    what = f"adapter {name!r}"
    if not directory.is_dir():
        raise ModelDirError(f"{what}: directory {directory} does not exist; {REBUILD_HINT}")
    config = _read_json(directory / "adapter_config.json", what)
    rank = config.get("r")
    if config.get("peft_type", "LORA") != "LORA" or not isinstance(rank, int) or rank < 1:
        raise ModelDirError(f"{what}: {directory} is not a PEFT LoRA adapter (needs peft_type "
                            f"LORA and an integer r); {REBUILD_HINT}")
    if rank > max_lora_rank:
        raise ModelDirError(f"{what} has LoRA rank {rank} > max_lora_rank {max_lora_rank}; "
                            f"set MEDGO_INFERENCE_MAX_LORA_RANK to at least {rank}")
    _check_weights(directory, "adapter_model", what)
    return AdapterInfo(name=name, path=directory, rank=rank)
