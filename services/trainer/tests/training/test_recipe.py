"""Recipe loading: unknown keys, overrides, impossible combinations, the paper's values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from medgo_trainer.training.recipe import (
    RECIPES_DIR,
    RecipeError,
    build_lora_config,
    build_trl_config,
    load_recipe,
    resolve_recipe_path,
)


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"text": "高血压患者应低盐饮食。"}, ensure_ascii=False) + "\n")
    return path


def write_recipe(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(fields, allow_unicode=True))
    return path


def tiny_pretrain(text_file: Path, *overrides: str):
    return load_recipe(RECIPES_DIR / "medgo-tiny-pretrain.yaml",
                       [f"data.train=[{text_file}]", "data.eval=[]", *overrides])


def test_unknown_top_level_key_is_named_with_the_valid_ones(tmp_path: Path) -> None:
    path = write_recipe(tmp_path, stage="sft", base="m", data={"train": ["x"]}, learning_rate=1)
    with pytest.raises(RecipeError) as err:
        load_recipe(path)
    assert "unknown key 'learning_rate'" in str(err.value)
    assert ("valid keys: adapter, base, data, lora, max_serving_rank, model, reference, seed, "
            "stage, trl" in str(err.value))


def test_unknown_trl_key_fails_at_load_with_a_suggestion(text_file: Path) -> None:
    with pytest.raises(RecipeError) as err:
        tiny_pretrain(text_file, "trl.learnig_rate=1e-4")
    assert "unknown key 'learnig_rate'" in str(err.value)
    assert "SFTConfig" in str(err.value)
    assert "did you mean learning_rate" in str(err.value)


def test_unknown_lora_key_names_peft(text_file: Path) -> None:
    with pytest.raises(RecipeError, match=r"lora: unknown key 'rank'.*peft.LoraConfig"):
        tiny_pretrain(text_file, "lora.rank=8")


@pytest.mark.parametrize("bad", ["trl.learning_rate", "=3", "trl..x=1", "trl.learning_rate=[1"])
def test_malformed_override_is_rejected(text_file: Path, bad: str) -> None:
    with pytest.raises(RecipeError, match="override"):
        tiny_pretrain(text_file, bad)


def test_override_is_typed_and_applied(text_file: Path) -> None:
    recipe = tiny_pretrain(text_file, "trl.learning_rate=1e-5", "seed=7")
    config = build_trl_config(recipe, "out")
    assert config.learning_rate == 1e-5
    assert config.seed == 7  # the recipe seed reaches TRL
    assert recipe.data.train == [str(text_file)]


def test_value_rejected_by_trl_is_reported(text_file: Path) -> None:
    with pytest.raises(RecipeError, match=r"SFTConfig rejected.*cosin"):
        tiny_pretrain(text_file, "trl.lr_scheduler_type=cosin")


def test_bf16_on_cpu_is_impossible(text_file: Path) -> None:
    with pytest.raises(RecipeError, match="bf16/fp16 with use_cpu"):
        tiny_pretrain(text_file, "trl.bf16=true")


def test_dpo_without_a_reference_adapter_is_impossible(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    path = write_recipe(tmp_path, stage="dpo", base="m", data={"train": [str(pairs)]})
    with pytest.raises(RecipeError, match="adapter: stage dpo needs the SFT adapter"):
        load_recipe(path)


def test_kto_needs_unpaired_labelled_rows(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": "b"}) + "\n")
    path = write_recipe(tmp_path, stage="kto", base="m", adapter="a",
                        data={"train": [str(pairs)]})
    with pytest.raises(RecipeError, match=r"lack \['completion', 'label'\] needed by stage kto"):
        load_recipe(path)


def test_empty_data_file_fails_before_compute(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(RecipeError, match="is empty"):
        tiny_pretrain(empty)


def test_paper_sft_recipe_loads_exactly() -> None:
    recipe = load_recipe(resolve_recipe_path("medgo-72b-sft"), check_data=False)
    assert recipe.lora is not None
    assert (recipe.lora["r"], recipe.lora["lora_alpha"], recipe.lora["lora_dropout"]) == (
        16, 8, 0.05)
    trl = recipe.trl
    assert trl["num_train_epochs"] == 2
    assert trl["per_device_train_batch_size"] == 1
    assert trl["learning_rate"] == 2e-5
    assert trl["lr_scheduler_type"] == "cosine"
    assert trl["warmup_steps"] == 0.01
    assert trl["gradient_accumulation_steps"] == 4
    assert trl["bf16"] is True
    assert trl["model_init_kwargs"]["attn_implementation"] == "flash_attention_2"
    zero = json.loads(Path(trl["deepspeed"]).read_text())
    assert zero["zero_optimization"]["stage"] == 3


@pytest.mark.parametrize("name", ["medgo-72b-pretrain", "medgo-72b-sft"])
def test_72b_recipe_builds_its_trl_config_without_a_gpu(name: str) -> None:
    recipe = load_recipe(resolve_recipe_path(name), check_data=False)
    config = build_trl_config(recipe, "out", dry_run=True)
    assert type(config).__name__ == "SFTConfig"
    assert config.learning_rate == 2e-5
    assert config.get_warmup_steps(1000) == 10  # warm-up ratio 0.01
    assert build_lora_config(recipe).r == 16
    assert not torch.cuda.is_initialized()


def test_resolved_recipe_round_trips(text_file: Path, tmp_path: Path) -> None:
    recipe = tiny_pretrain(text_file, "trl.max_steps=3")
    saved = recipe.save(tmp_path / "out" / "recipe.resolved.yaml")
    assert load_recipe(saved) == recipe


def test_unknown_packaged_recipe_lists_the_known_ones() -> None:
    with pytest.raises(RecipeError, match=r"packaged: .*medgo-tiny-sft"):
        resolve_recipe_path("medgo-huge-sft")
