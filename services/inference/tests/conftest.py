"""Model directories on disk for the launcher's tests.

They are real files in the formats vLLM reads (config.json, safetensors with a valid
header, tokenizer.json, PEFT adapter_config.json), just tiny: the launcher inspects
the files, it never loads the weights, so a 72B config needs no 72B of weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import save_file

# medgo-tiny's shape (head_dim 64) and Qwen2-72B's published config.
TINY_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 256,
    "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 4,
    "max_position_embeddings": 2048, "vocab_size": 8192,
}  # fmt: skip
QWEN2_72B_CONFIG: dict[str, Any] = {
    "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_size": 8192,
    "intermediate_size": 29568, "num_attention_heads": 64, "num_key_value_heads": 8,
    "num_hidden_layers": 80, "max_position_embeddings": 32768, "vocab_size": 152064,
    "torch_dtype": "bfloat16",
}  # fmt: skip


def _write_weights(path: Path) -> None:
    save_file({"w": np.zeros((2, 2), dtype=np.float32)}, str(path))


def write_base(directory: Path, config: dict[str, Any], shards: int = 1) -> Path:
    directory.mkdir(parents=True)
    (directory / "config.json").write_text(json.dumps(config))
    (directory / "tokenizer.json").write_text('{"version": "1.0"}')
    names = ["model.safetensors"] if shards == 1 else [
        f"model-{i:05d}-of-{shards:05d}.safetensors" for i in range(1, shards + 1)
    ]
    for name in names:
        _write_weights(directory / name)
    return directory


def write_adapter(directory: Path, rank: int = 8) -> Path:
    directory.mkdir(parents=True)
    config = {"peft_type": "LORA", "r": rank, "lora_alpha": 16, "target_modules": ["q_proj"]}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    _write_weights(directory / "adapter_model.safetensors")
    return directory


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A medgo-tiny-shaped checkpoint: `base/`, `adapters/sft/`, and a relative manifest."""
    write_base(tmp_path / "medgo-tiny" / "base", TINY_CONFIG)
    write_adapter(tmp_path / "medgo-tiny" / "adapters" / "sft")
    (tmp_path / "serving.json").write_text(json.dumps({
        "checkpoint_id": "medgo-tiny-sft",
        "base_model": "medgo-tiny/base",
        "adapters": [{"name": "medgo-tiny-sft", "path": "medgo-tiny/adapters/sft"}],
    }))  # fmt: skip
    return tmp_path


@pytest.fixture
def qwen72b_model(tmp_path: Path) -> Path:
    """Qwen2-72B's layout (37 shards, like the published checkpoint) plus a DPO adapter."""
    write_base(tmp_path / "qwen2-72b", QWEN2_72B_CONFIG, shards=37)
    write_adapter(tmp_path / "adapters" / "medgo-72b-dpo-3f2a9c1", rank=16)
    return tmp_path

