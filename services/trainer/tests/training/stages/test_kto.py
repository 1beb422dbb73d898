"""kto: unpaired verdicts train the new adapter on top of the SFT policy; bad labels fail early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from medgo_trainer.training.recipe import RecipeError
from medgo_trainer.training.stages.base import finish
from medgo_trainer.training.stages.preference import build_trainer

VERDICTS = [
    {"prompt": [{"role": "user", "content": "高血压怎么办？"}],
     "completion": "规律服药，低盐饮食。", "label": True},
    {"prompt": "高血压怎么办？", "completion": "多饮水休息。", "label": False},
    {"prompt": "糖尿病要注意什么？",
     "completion": [{"role": "assistant", "content": "控制饮食，监测血糖。"}], "label": True},
    {"prompt": "糖尿病要注意什么？", "completion": "头痛需做CT。", "label": False},
]


def test_kto_trains_every_trainable_parameter_on_top_of_the_sft_policy(
    make_recipe, micro_policy, tmp_path
):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    recipe = make_recipe("kto", VERDICTS, max_steps=3)
    out = tmp_path / "out"
    trainer = build_trainer(recipe, out, progress=False)
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
                 if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    # The frozen weights under the new adapter are the SFT policy (base + SFT merged).
    base = AutoModelForCausalLM.from_pretrained(micro_policy.base)
    merged = PeftModel.from_pretrained(base, micro_policy.sft_adapter).merge_and_unload()
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    frozen_q = dict(trainer.model.named_parameters())[f"base_model.model.{q_proj}".replace(
        "q_proj.weight", "q_proj.base_layer.weight")]
    torch.testing.assert_close(frozen_q, dict(merged.named_parameters())[q_proj])

    result = finish(trainer, recipe, out)

    params = dict(trainer.model.named_parameters())
    assert [n for n, before in trainable.items() if torch.equal(before, params[n])] == []
    assert (out / "adapter_model.safetensors").is_file()
    assert result.metrics["train_loss"] > 0


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"prompt": "a", "completion": "b", "label": "acceptable"}, "'label' must be true or"),
        ({"prompt": "a", "completion": "b"}, r"row lacks \['label'\]"),
        (["a", "b", True], "expected a JSON object"),
    ],
)
def test_bad_kto_rows_fail_before_the_model_loads(make_recipe, tmp_path, row, message):
    recipe = make_recipe("kto", VERDICTS)
    Path(recipe.data.train[0]).write_text(json.dumps(VERDICTS[0]) + "\n" + json.dumps(row) + "\n")
    recipe.base = str(tmp_path / "no-such-model")
    with pytest.raises(RecipeError, match=message):
        build_trainer(recipe, tmp_path / "out", progress=False)
