"""A micro pretrain + LoRA SFT through the real stages (TRL + PEFT on CPU, seconds)."""

from __future__ import annotations

import json
from itertools import islice
from pathlib import Path

import pytest
import torch
from medgo_trainer.data.corpus import dialogue_text, read_dialogues
from medgo_trainer.outputs import RESOLVED_RECIPE
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.recipe import RECIPES_DIR, RecipeError, build_lora_config, load_recipe
from medgo_trainer.training.stages import pretrain, sft
from medgo_trainer.training.stages.datafiles import data_snapshot_hash
from medgo_trainer.training.tokenizer import save_tokenizer, train_tokenizer
from peft import PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, set_seed

MICRO_MODEL = [  # a 2-layer Qwen2 small enough to train in a few seconds
    "model.hidden_size=64", "model.intermediate_size=128", "model.num_hidden_layers=2",
    "model.num_attention_heads=2", "model.num_key_value_heads=1",
]
MICRO_TRAINING = [
    "trl.max_length=64", "trl.per_device_train_batch_size=4", "trl.learning_rate=5e-3",
    "trl.logging_steps=1",
]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tokenizer and `text`/`messages` files from 200 dialogues of the bundled corpus."""
    root = tmp_path_factory.mktemp("stages")
    dialogues = list(islice(read_dialogues(TrainerSettings().data_dir), 200))
    save_tokenizer(train_tokenizer([dialogue_text(d) for d in dialogues], 512), root / "tok")
    with (root / "text.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"text": dialogue_text(d)}, ensure_ascii=False) + "\n"
                      for d in dialogues[:64])
    with (root / "chat.jsonl").open("w", encoding="utf-8") as fh:
        fh.writelines(json.dumps({"messages": d}, ensure_ascii=False) + "\n"
                      for d in dialogues[:32])
    return root


@pytest.fixture(scope="module")
def pretrained(workdir: Path):
    """Pre-train from scratch; held-out = the training text, so the loss must fall."""
    recipe = load_recipe(RECIPES_DIR / "medgo-tiny-pretrain.yaml", [
        f"base={workdir / 'tok'}", f"data.train=[{workdir / 'text.jsonl'}]",
        f"data.eval=[{workdir / 'text.jsonl'}]", "trl.max_steps=12", *MICRO_MODEL,
        *MICRO_TRAINING,
    ])
    return recipe, pretrain.run(recipe, workdir / "base", progress=False)


def test_pretrain_lowers_held_out_loss_and_records_lineage(pretrained, workdir: Path) -> None:
    recipe, result = pretrained
    metrics = result.metrics
    assert metrics["eval_perplexity"] < 0.7 * metrics["initial_eval_perplexity"], metrics
    assert metrics["train_tokens"] > 0
    assert load_recipe(result.recipe_path) == recipe  # the resolved recipe reloads as is
    assert result.recipe_path == result.out_dir / RESOLVED_RECIPE
    assert result.data_hash == data_snapshot_hash(recipe)
    model = AutoModelForCausalLM.from_pretrained(result.out_dir)
    assert model.config.num_hidden_layers == 2
    assert (result.out_dir / "tokenizer.json").is_file()


def test_sft_changes_every_lora_parameter_and_the_adapter_reloads(
    pretrained, workdir: Path
) -> None:
    _, base = pretrained
    recipe = load_recipe(RECIPES_DIR / "medgo-tiny-sft.yaml", [
        f"base={base.out_dir}", f"data.train=[{workdir / 'chat.jsonl'}]", "data.eval=[]",
        "trl.max_steps=6", "lora.r=4", *MICRO_TRAINING,
    ])
    result = sft.run(recipe, workdir / "sft", progress=False)

    # The adapter as TRL initialised it: same seed, same base, same LoRA config.
    set_seed(recipe.seed)
    initial = get_peft_model(AutoModelForCausalLM.from_pretrained(base.out_dir),
                             build_lora_config(recipe))
    before = {k: v for k, v in initial.state_dict().items() if "lora_" in k}
    after = load_file(result.out_dir / "adapter_model.safetensors")
    assert len(after) == len(before) == 2 * 7 * 2  # A and B x 7 modules x 2 layers
    unchanged = [k for k, v in after.items()
                 if torch.equal(v, before[k.replace(".weight", ".default.weight")])]
    assert unchanged == []

    base_model = AutoModelForCausalLM.from_pretrained(base.out_dir)
    ids = torch.tensor([[5, 6, 7, 8]])
    plain = base_model(ids).logits
    tuned = PeftModel.from_pretrained(base_model, result.out_dir)(ids).logits
    assert not torch.allclose(plain, tuned)


def test_stage_refuses_a_recipe_for_another_stage(pretrained, workdir: Path) -> None:
    recipe, _ = pretrained
    with pytest.raises(RecipeError, match="this is the sft stage, the recipe is for pretrain"):
        sft.run(recipe, workdir / "wrong")
    assert not (workdir / "wrong").exists()


def test_same_seed_gives_the_same_weights(pretrained, workdir: Path) -> None:
    recipe, first = pretrained
    again = pretrain.run(recipe, workdir / "again", progress=False)
    a = load_file(first.out_dir / "model.safetensors")
    b = load_file(again.out_dir / "model.safetensors")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
