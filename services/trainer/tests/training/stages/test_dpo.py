"""dpo: the reference is the SFT policy, every trainable parameter moves, bad input fails early."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from medgo_trainer.training.recipe import RecipeError, load_recipe, resolve_recipe_path
from medgo_trainer.training.stages.base import finish
from medgo_trainer.training.stages.preference import build_trainer

PAIRS = [
    {"prompt": [{"role": "user", "content": "高血压怎么办？"}],
     "chosen": "规律服药，低盐饮食，定期复查血压。", "rejected": "多饮水休息。"},
    {"prompt": "糖尿病要注意什么？",
     "chosen": [{"role": "assistant", "content": "控制饮食，监测血糖。"}],
     "rejected": [{"role": "assistant", "content": "头痛需做CT。"}]},
] * 2


def _completion_logps(model, batch) -> torch.Tensor:
    """Sum of log p(completion token) per sequence, computed without TRL."""
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logps = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    token = logps.gather(-1, batch["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    return (token * batch["completion_mask"][:, 1:]).sum(dim=1)


def test_reference_log_probs_are_the_sft_policy_not_the_base(make_recipe, micro_policy, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    trainer = build_trainer(make_recipe("dpo", PAIRS), tmp_path / "out", progress=False)
    batch = next(iter(trainer.get_train_dataloader()))
    ref_chosen, ref_rejected = trainer.compute_ref_log_probs(trainer.model, batch)
    reference = torch.cat([ref_chosen, ref_rejected])

    base = AutoModelForCausalLM.from_pretrained(micro_policy.base).eval()
    base_logps = _completion_logps(base, batch)
    sft = PeftModel.from_pretrained(base, micro_policy.sft_adapter).eval()  # unmerged
    sft_logps = _completion_logps(sft, batch)

    torch.testing.assert_close(reference, sft_logps, atol=1e-4, rtol=1e-4)
    assert (reference - base_logps).abs().max() > 1e-2  # the base would be a different reference


def test_dpo_trains_every_trainable_parameter_and_saves_the_adapter(make_recipe, tmp_path):
    recipe = make_recipe("dpo", PAIRS, max_steps=3)
    out = tmp_path / "out"
    trainer = build_trainer(recipe, out, progress=False)
    trainable = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
                 if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in trainer.model.named_parameters()
              if not p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)

    result = finish(trainer, recipe, out)

    params = dict(trainer.model.named_parameters())
    unchanged = [n for n, before in trainable.items() if torch.equal(before, params[n])]
    assert unchanged == []
    assert all(torch.equal(before, params[n]) for n, before in frozen.items())
    assert (out / "adapter_model.safetensors").is_file()
    assert (out / "recipe.resolved.yaml").is_file()
    assert result.metrics["train_loss"] > 0 and len(result.data_hash) == 64


def test_rows_missing_fields_fail_before_the_model_loads(make_recipe, tmp_path):
    rows = [PAIRS[0], {"prompt": "胸闷怎么办？", "chosen": "及时就医。"}]
    recipe = make_recipe("dpo", [PAIRS[0]])
    Path(recipe.data.train[0]).write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    recipe.base = str(tmp_path / "no-such-model")  # loading it would be a different error
    with pytest.raises(RecipeError, match=r"dpo\.jsonl:2: row lacks \['rejected'\]"):
        build_trainer(recipe, tmp_path / "out", progress=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "holds no dpo rows"),
        ('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{"prompt": ', r"\.jsonl:2: not valid"),
        ('{"prompt": [], "chosen": "b", "rejected": "c"}\n', "'prompt' must be a string or"),
        ('{"prompt": "a", "chosen": "  ", "rejected": "c"}\n', "'chosen' is empty"),
        ('{"prompt": [{"role": "doctor", "content": "a"}], "chosen": "b", "rejected": "c"}\n',
         "without a valid role"),
    ],
)
def test_malformed_preference_files_are_clear_errors(make_recipe, tmp_path, content, message):
    recipe = make_recipe("dpo", [PAIRS[0]])
    Path(recipe.data.train[0]).write_text(content, encoding="utf-8")
    recipe.base = str(tmp_path / "no-such-model")
    with pytest.raises(RecipeError, match=message):
        build_trainer(recipe, tmp_path / "out", progress=False)


def test_interrupted_run_resumes_from_its_last_checkpoint(make_recipe, tmp_path):
    out = tmp_path / "out"
    first = build_trainer(make_recipe("dpo", PAIRS, save_strategy="steps", save_steps=1), out,
                          progress=False)
    first.train()
    saved = {n: p.detach().clone() for n, p in first.model.named_parameters() if p.requires_grad}
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]

    resumed = build_trainer(make_recipe("dpo", PAIRS, resume_from_checkpoint="last"), out,
                            progress=False)
    assert resumed.args.resume_from_checkpoint == str(out / "checkpoint-2")
    fresh = {n: p.detach().clone() for n, p in resumed.model.named_parameters() if p.requires_grad}
    resumed.train(resume_from_checkpoint=resumed.args.resume_from_checkpoint)

    assert resumed.state.global_step == 2  # nothing left to do: max_steps already reached
    params = dict(resumed.model.named_parameters())
    assert all(torch.equal(saved[n], params[n]) for n in saved)  # weights came from the ckpt
    assert any(not torch.equal(fresh[n], params[n]) for n in fresh)


def test_corrupt_or_missing_checkpoint_is_a_clear_error(make_recipe, tmp_path):
    out = tmp_path / "out"
    build_trainer(make_recipe("dpo", PAIRS, save_strategy="steps", save_steps=2), out,
                  progress=False).train()
    weights = out / "checkpoint-2" / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])

    recipe = make_recipe("dpo", PAIRS, resume_from_checkpoint="last")
    with pytest.raises(RecipeError, match=r"checkpoint-2/adapter_model.safetensors is corrupt"):
        build_trainer(recipe, out, progress=False)
    recipe = make_recipe("dpo", PAIRS, resume_from_checkpoint="last")
    with pytest.raises(RecipeError, match="no checkpoint-\\* directory"):
        build_trainer(recipe, tmp_path / "empty", progress=False)
    fresh = make_recipe("dpo", PAIRS, resume_from_checkpoint="auto")  # a pod's first start
    assert build_trainer(fresh, tmp_path / "empty", progress=False).args.resume_from_checkpoint \
        is None


@pytest.mark.parametrize("name", ["medgo-72b-dpo", "medgo-tiny-dpo", "medgo-tiny-kto"])
def test_packaged_preference_recipes_validate(name):
    recipe = load_recipe(resolve_recipe_path(name), check_data=False)
    assert recipe.adapter and recipe.lora
    if name == "medgo-72b-dpo":  # the paper's settings
        assert {k: recipe.lora[k] for k in ("r", "lora_alpha", "lora_dropout")} == {
            "r": 16, "lora_alpha": 8, "lora_dropout": 0.05}
        assert recipe.trl["learning_rate"] == 2e-5 and recipe.trl["num_train_epochs"] == 2
        assert recipe.trl["deepspeed"].endswith("zero3.json")


def test_serving_adapter_on_the_raw_base_is_the_trained_policy(make_recipe, micro_policy,
                                                                tmp_path):
    from medgo_trainer.training.stages.preference import run
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "out"
    run(make_recipe("dpo", PAIRS, max_steps=2), out, progress=False)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])

    def logits(model) -> torch.Tensor:
        with torch.no_grad():
            return model.eval()(input_ids=ids).logits

    merged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(micro_policy.base), micro_policy.sft_adapter
    ).merge_and_unload()
    sft_only = logits(merged)
    trained = logits(PeftModel.from_pretrained(merged, out))  # what DPO optimised (in place)
    served = logits(PeftModel.from_pretrained(  # what vLLM will run: raw base + one adapter
        AutoModelForCausalLM.from_pretrained(micro_policy.base), out / "serving"))

    torch.testing.assert_close(served, trained, atol=1e-4, rtol=1e-4)
    assert (trained - sft_only).abs().max() > 1e-3  # the DPO delta is really in there
