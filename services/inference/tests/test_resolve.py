"""Settings + files on disk → ServePlan, and every way a checkpoint can be unservable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from medgo_inference.hardware import Hardware, cpu_has_fast_bf16
from medgo_inference.modeldir import ModelDirError
from medgo_inference.resolve import PlanError, resolve_plan
from medgo_inference.settings import InferenceSettings

CPU = Hardware(cuda=False, cpu_fast_bf16=False)
A100 = Hardware(cuda=True, cpu_fast_bf16=False)


def settings(**values: object) -> InferenceSettings:
    return InferenceSettings(**values)


def test_manifest_plan_for_medgo_tiny_on_cpu(tiny_model: Path) -> None:
    plan = resolve_plan(settings(manifest=tiny_model / "serving.json"), CPU)

    assert plan.checkpoint_id == "medgo-tiny-sft"
    assert plan.base_model == tiny_model / "medgo-tiny" / "base"  # manifest-relative path
    assert [(a.name, a.path, a.rank) for a in plan.adapters] == [
        ("medgo-tiny-sft", tiny_model / "medgo-tiny" / "adapters" / "sft", 8)
    ]
    assert plan.default_adapter == "medgo-tiny-sft"
    assert (plan.device, plan.dtype) == ("cpu", "float32")
    assert plan.max_num_seqs == 16
    assert plan.served_model_name == "medgo"


def test_qwen72b_plan_on_8_a100(qwen72b_model: Path) -> None:
    adapter = qwen72b_model / "adapters" / "medgo-72b-dpo-3f2a9c1"
    plan = resolve_plan(
        settings(
            base_model=qwen72b_model / "qwen2-72b",
            adapters=f"medgo-72b-dpo-3f2a9c1={adapter}",
            tensor_parallel_size=8,
            max_model_len=8192,
        ),
        A100,
    )

    assert (plan.device, plan.dtype) == ("cuda", "bfloat16")
    assert plan.tensor_parallel_size == 8
    assert plan.max_model_len == 8192
    assert plan.max_num_seqs == 256
    assert plan.checkpoint_id == "medgo-72b-dpo-3f2a9c1"
    assert plan.adapters[0].rank == 16


def test_explicit_base_model_wins_over_manifest(tiny_model: Path, qwen72b_model: Path) -> None:
    plan = resolve_plan(
        settings(manifest=tiny_model / "serving.json", base_model=qwen72b_model / "qwen2-72b"),
        A100,
    )
    assert plan.base_model == qwen72b_model / "qwen2-72b"
    assert plan.adapters == ()
    assert plan.default_adapter is None


def test_explicit_settings_win_over_auto(tiny_model: Path) -> None:
    plan = resolve_plan(
        settings(manifest=tiny_model / "serving.json", dtype="bfloat16", max_num_seqs=4), CPU
    )
    assert (plan.dtype, plan.max_num_seqs) == ("bfloat16", 4)


def test_amx_cpu_gets_bfloat16(tiny_model: Path) -> None:
    plan = resolve_plan(settings(manifest=tiny_model / "serving.json"), Hardware(False, True))
    assert plan.dtype == "bfloat16"


def test_cpu_flag_detection() -> None:
    avx512_only = "processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    assert not cpu_has_fast_bf16(avx512_only)
    assert cpu_has_fast_bf16("flags\t\t: fpu avx512f amx_tile amx_bf16 amx_int8\n")


@pytest.mark.parametrize(
    ("relative", "content", "expected"),
    [
        ("medgo-tiny/base/config.json", b"{not json", "is not valid JSON"),
        ("medgo-tiny/base/config.json", b'["qwen2"]', "is not a JSON object"),
        ("medgo-tiny/base/config.json", b'{"hidden_size": 256}', "has no model_type"),
        ("medgo-tiny/base/model.safetensors", b"\x10\x00\x00\x00", "corrupt or truncated"),
        ("medgo-tiny/adapters/sft/adapter_config.json", b"{", "is not valid JSON"),
        ("medgo-tiny/adapters/sft/adapter_config.json", b'{"peft_type": "IA3", "r": 8}',
         "is not a PEFT LoRA adapter"),
        ("serving.json", b'{"checkpoint_id": ""}', "serving manifest"),
    ],
)  # fmt: skip
def test_corrupt_files_are_named(
    tiny_model: Path, relative: str, content: bytes, expected: str
) -> None:
    (tiny_model / relative).write_bytes(content)
    with pytest.raises((ModelDirError, PlanError)) as info:
        resolve_plan(settings(manifest=tiny_model / "serving.json"), CPU)
    message = str(info.value)
    assert expected in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("removed", "expected"),
    [
        ("medgo-tiny/base", "base model directory"),
        ("medgo-tiny/base/config.json", "config.json is missing"),
        ("medgo-tiny/base/model.safetensors", "no weights"),
        ("medgo-tiny/base/tokenizer.json", "has no tokenizer"),
        ("medgo-tiny/adapters/sft", "adapter 'medgo-tiny-sft': directory"),
        ("medgo-tiny/adapters/sft/adapter_model.safetensors", "no weights"),
        ("serving.json", "no checkpoint to serve"),
    ],
)
def test_missing_files_are_named(tiny_model: Path, removed: str, expected: str) -> None:
    target = tiny_model / removed
    if target.is_dir():
        for child in sorted(target.rglob("*"), reverse=True):
            child.rmdir() if child.is_dir() else child.unlink()
        target.rmdir()
    else:
        target.unlink()
    with pytest.raises((ModelDirError, PlanError), match=expected):
        resolve_plan(settings(manifest=tiny_model / "serving.json"), CPU)


def test_adapter_rank_above_max_is_refused(tiny_model: Path) -> None:
    config = tiny_model / "medgo-tiny/adapters/sft/adapter_config.json"
    config.write_text(json.dumps({"peft_type": "LORA", "r": 64}))
    with pytest.raises(ModelDirError, match="rank 64 > max_lora_rank 16"):
        resolve_plan(settings(manifest=tiny_model / "serving.json"), CPU)
    plan = resolve_plan(settings(manifest=tiny_model / "serving.json", max_lora_rank=64), CPU)
    assert plan.adapters[0].rank == 64


def test_tensor_parallel_must_divide_heads(qwen72b_model: Path) -> None:
    with pytest.raises(PlanError, match="tensor_parallel_size 3 does not divide the 64"):
        resolve_plan(
            settings(base_model=qwen72b_model / "qwen2-72b", tensor_parallel_size=3), A100
        )


def test_max_model_len_beyond_positions(tiny_model: Path) -> None:
    with pytest.raises(PlanError, match="max_model_len 4096 exceeds the 2048 positions"):
        resolve_plan(settings(manifest=tiny_model / "serving.json", max_model_len=4096), CPU)


def test_cpu_needs_head_dim_32(tiny_model: Path) -> None:
    config_path = tiny_model / "medgo-tiny/base/config.json"
    config = json.loads(config_path.read_text())
    config_path.write_text(json.dumps({**config, "num_attention_heads": 16}))  # head_dim 16
    with pytest.raises(PlanError, match="head_dim 16"):
        resolve_plan(settings(manifest=tiny_model / "serving.json"), CPU)
    assert resolve_plan(settings(manifest=tiny_model / "serving.json"), A100).device == "cuda"


def test_cuda_requested_without_gpu(tiny_model: Path) -> None:
    with pytest.raises(PlanError, match="torch sees no CUDA GPU"):
        resolve_plan(settings(manifest=tiny_model / "serving.json", device="cuda"), CPU)


def test_adapters_without_base_model(tiny_model: Path) -> None:
    with pytest.raises(PlanError, match="needs MEDGO_INFERENCE_BASE_MODEL"):
        resolve_plan(settings(adapters=f"x={tiny_model}"), CPU)


def test_adapter_name_must_not_shadow_served_name(tiny_model: Path) -> None:
    adapter = tiny_model / "medgo-tiny/adapters/sft"
    with pytest.raises(PlanError, match="collides with the served base model name"):
        resolve_plan(
            settings(base_model=tiny_model / "medgo-tiny/base", adapters=f"medgo={adapter}"), CPU
        )


def test_adapter_name_must_be_a_checkpoint_id(tiny_model: Path) -> None:
    adapter = tiny_model / "medgo-tiny/adapters/sft"
    with pytest.raises(PlanError, match="not a valid checkpoint id"):
        resolve_plan(
            settings(base_model=tiny_model / "medgo-tiny/base", adapters=f"a b={adapter}"), CPU
        )
