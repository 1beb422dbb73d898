"""A micro Qwen2 policy for the DPO/KTO tests: base weights, tokenizer and an SFT adapter.

Built in about a second from nothing (a 300-entry BPE trained on a few sentences with
medgo-tiny's own tokenizer code, a 2-layer Qwen2, a LoRA adapter with *random* B
matrices so the SFT policy really differs from the base), so these tests do not wait
for medgo-tiny and can tell "reference = SFT" apart from "reference = base".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from medgo_trainer.training.recipe import Recipe, recipe_from_dict, validate

SENTENCES = [
    "高血压患者应规律服药，低盐饮食，定期复查血压。",
    "糖尿病需要控制饮食，监测血糖，必要时使用胰岛素。",
    "感冒发热可多饮水休息，持续高热应及时就医。",
    "头痛伴呕吐需警惕颅内病变，应尽快做头颅CT检查。",
]


@dataclass(frozen=True)
class MicroPolicy:
    base: Path
    sft_adapter: Path


@pytest.fixture(scope="session")
def micro_policy(tmp_path_factory: pytest.TempPathFactory) -> MicroPolicy:
    import torch
    from medgo_trainer.training.tokenizer import train_tokenizer
    from peft import LoraConfig, get_peft_model
    from transformers import Qwen2Config, Qwen2ForCausalLM

    root = tmp_path_factory.mktemp("micro")
    tokenizer = train_tokenizer(SENTENCES * 4, vocab_size=300)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=256,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=True,
    )
    model = Qwen2ForCausalLM(config)
    model.save_pretrained(root / "base")
    tokenizer.save_pretrained(root / "base")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(model, lora).save_pretrained(root / "sft")
    return MicroPolicy(base=root / "base", sft_adapter=root / "sft")


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture
def make_recipe(micro_policy: MicroPolicy, tmp_path: Path) -> Callable[..., Recipe]:
    """A validated tiny recipe for `stage` on `rows`; `trl` entries override the defaults."""

    def make(stage: str, rows: list[Any], **trl: Any) -> Recipe:
        data = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
        recipe = recipe_from_dict({
            "stage": stage,
            "base": str(micro_policy.base),
            "adapter": str(micro_policy.sft_adapter),
            "lora": {"r": 4, "lora_alpha": 8, "target_modules": ["q_proj", "v_proj"]},
            "data": {"train": [str(data)]},
            "trl": {"use_cpu": True, "bf16": False, "max_steps": 2,
                    "per_device_train_batch_size": 2, "learning_rate": 1e-2,
                    "max_length": 64, "report_to": "none",
                    "save_strategy": "no", "logging_steps": 1, "disable_tqdm": True, **trl},
        })
        validate(recipe)
        return recipe

    return make
