"""export: merged = base + adapters to float tolerance, with lineage; and the inputs a
72B job must refuse before any compute (DeepSpeed vs training arguments, unexported
starting points, resume directories without shards or from another recipe)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from medgo_trainer.training.deepspeed_config import resolve_deepspeed
from medgo_trainer.training.export import ExportError, check_export, export
from medgo_trainer.training.promotion import register_run
from medgo_trainer.training.recipe import RECIPES_DIR, RecipeError, load_recipe
from medgo_trainer.training.registry import Registry
from medgo_trainer.training.stages.resume import resolve_resume

ZERO3 = RECIPES_DIR / "deepspeed" / "zero3.json"


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


@pytest.fixture
def merged(micro_policy, tmp_path) -> Path:
    out = tmp_path / "merged"
    export(micro_policy.base, [micro_policy.sft_adapter], out, progress=False)
    return out


def test_export_equals_base_plus_adapter_and_records_lineage(micro_policy, merged, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    ids = torch.randint(0, 250, (2, 24))
    unmerged = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(micro_policy.base), micro_policy.sft_adapter)
    plain = AutoModelForCausalLM.from_pretrained(merged)  # a normal HF directory
    assert not (merged / "adapter_config.json").exists()
    torch.testing.assert_close(_logits(plain, ids), _logits(unmerged, ids), atol=1e-5, rtol=1e-5)
    base = AutoModelForCausalLM.from_pretrained(micro_policy.base)
    assert (_logits(base, ids) - _logits(plain, ids)).abs().max() > 1e-3  # it did change

    record = json.loads((merged / "export.json").read_text())
    assert record["base"] == str(micro_policy.base.resolve())
    assert [a["path"] for a in record["adapters"]] == [str(micro_policy.sft_adapter.resolve())]
    check_export(merged, str(micro_policy.base), [str(micro_policy.sft_adapter)])
    registry = Registry(tmp_path / "models")
    registry.register(checkpoint_id="micro-sft", base=str(micro_policy.base), stage="sft",
                      path=micro_policy.sft_adapter, data_sha256="", recipe={})
    register_run(registry, "micro-sft-merged", merged, "micro-sft")
    assert [c.id for c in registry.lineage("micro-sft-merged")] == ["micro-sft-merged",
                                                                   "micro-sft"]
    assert registry.get("micro-sft-merged").stage == "export"


def test_adapter_from_another_base_is_refused_before_merging(micro_policy, tmp_path):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    other = tmp_path / "wider"
    Qwen2ForCausalLM(Qwen2Config(vocab_size=300, hidden_size=48, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2,
                                 num_key_value_heads=1)).save_pretrained(other)
    with pytest.raises(ExportError, match="does not match base"):
        export(other, [micro_policy.sft_adapter], tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ExportError, match="is a LoRA adapter"):
        export(micro_policy.sft_adapter, [micro_policy.sft_adapter], tmp_path / "o2")


def _recipe(stage: str, base: Path, data: Path, *sets: str):
    return load_recipe(RECIPES_DIR / f"medgo-72b-{stage}.yaml",
                       [f"base={base}", f"data.train=[{data}]", "data.eval=[]", *sets])


@pytest.fixture
def rows(tmp_path) -> dict[str, Path]:
    out = {}
    for stage, row in (("sft", {"messages": [{"role": "user", "content": "q"}]}),
                       ("dpo", {"prompt": "q", "chosen": "a", "rejected": "b"})):
        out[stage] = tmp_path / f"{stage}.jsonl"
        out[stage].write_text(json.dumps(row) + "\n")
    return out


def test_lora_output_as_sft_base_and_unexported_reference_are_clear_errors(micro_policy, merged,
                                                                           rows, tmp_path):
    with pytest.raises(RecipeError, match=r"is a LoRA adapter .* medgo-train export"):
        _recipe("sft", micro_policy.sft_adapter, rows["sft"])
    adapter = f"adapter={micro_policy.sft_adapter}"
    with pytest.raises(RecipeError, match=r"under DeepSpeed ZeRO-3 .*medgo-train export"):
        _recipe("dpo", micro_policy.base, rows["dpo"], adapter, "reference=null")
    ok = _recipe("dpo", micro_policy.base, rows["dpo"], adapter, f"reference={merged}")
    assert ok.reference == str(merged)
    other = tmp_path / "other-sft"  # the same shapes, other weights: not this export
    other.mkdir()
    for file in micro_policy.sft_adapter.iterdir():
        (other / file.name).write_bytes(file.read_bytes())
    weights = other / "adapter_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(ExportError, match="export again"):
        check_export(merged, str(micro_policy.base), [str(other)])


@pytest.mark.parametrize(("change", "message"), [
    ({"train_micro_batch_size_per_gpu": 2}, r"train_micro_batch_size_per_gpu=2 .*"
                                            r"per_device_train_batch_size=1"),
    ({"gradient_accumulation_steps": 8}, r"gradient_accumulation_steps=8 .*steps=4"),
    ({"gradient_clipping": 0.5}, r"gradient_clipping=0.5 .*max_grad_norm=1.0"),
    ({"bf16": {"enabled": False}}, r"bf16.enabled=False .*bf16=True"),
    ({"fp16": {"enabled": True}}, r"fp16.enabled=True .*fp16=False"),
    ({"optimizer": {"type": "AdamW", "params": {"lr": 1e-4}}},
     r"optimizer.params.lr=0.0001 .*learning_rate=2e-05"),
    ({"train_batch_size": 6}, r"train_batch_size=6, not a multiple .*= 4"),
])
def test_deepspeed_config_contradicting_the_arguments_fails_at_load(micro_policy, rows, tmp_path,
                                                                    change, message):
    config = {**json.loads(ZERO3.read_text()), **change}
    path = tmp_path / "ds.json"
    path.write_text(json.dumps(config))
    with pytest.raises(RecipeError, match=message):
        _recipe("sft", micro_policy.base, rows["sft"], f"trl.deepspeed={path}")


def test_hierarchical_partitions_follow_ranks_per_node(monkeypatch):
    config = json.loads(ZERO3.read_text())
    assert config["zero_optimization"]["zero_hpz_partition_size"] == "auto"
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")  # torchrun on an 8-GPU node
    assert resolve_deepspeed(config)["zero_optimization"]["zero_hpz_partition_size"] == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    assert "zero_hpz_partition_size" not in resolve_deepspeed(config)["zero_optimization"]


def test_resume_without_shards_or_from_another_recipe_is_refused(micro_policy, rows, tmp_path):
    out = tmp_path / "run"
    checkpoint = out / "checkpoint-2"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": 2}))
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, checkpoint / "adapter_model.safetensors")
    recipe = _recipe("sft", micro_policy.base, rows["sft"])
    with pytest.raises(RecipeError, match="holds no DeepSpeed shards"):
        resolve_resume("auto", out, recipe, world_size=2)
    shards = checkpoint / "global_step2"
    shards.mkdir()
    (checkpoint / "latest").write_text("global_step2")
    for rank in range(4):
        (shards / f"zero_pp_rank_{rank}_mp_rank_00_model_states.pt").write_bytes(b"")
    with pytest.raises(RecipeError, match=r"4 ZeRO model shard.*2 rank"):
        resolve_resume("auto", out, recipe, world_size=2)
    recipe.save(out / "recipe.resolved.yaml")
    changed = _recipe("sft", micro_policy.base, rows["sft"], "trl.learning_rate=1e-3")
    with pytest.raises(RecipeError, match=r"another recipe .*trl.learning_rate"):
        resolve_resume("auto", out, changed, world_size=4)
