"""The 72B recipes under DeepSpeed ZeRO-3 on two CPU ranks, through torchrun, on medgo-tiny.

Each stage runs the packaged `medgo-72b-*` recipe with only paths and sizes changed
(`rehearsal.ALLOWED_OVERRIDES`, checked below) through the local executor's torchrun
command; the backend (gloo, DeepSpeed's CPU accelerator, SDPA) is the stage's own choice
on a machine without CUDA. Every stage is killed with SIGKILL after step 3 — their last
checkpoint is step 2 — and restarted with the recipe's `resume_from_checkpoint: auto`:
the restart must log step 3 again with the same loss, learning rate, epoch and tokens
seen, i.e. the same weights, optimizer, schedule and data position. Pretrain and KTO are
killed and resumed the same way. One killed and one resumed launch per stage per module,
shared by the assertions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.recipe import RECIPES_DIR, load_recipe
from medgo_trainer.training.stages.datafiles import data_snapshot_hash
from medgo_trainer.training.stages.rehearsal import (
    ALLOWED_OVERRIDES,
    SIZES,
    Launch,
    launch,
    overrides,
)

pytestmark = pytest.mark.slow

TINY = TrainerSettings().model_dir / "medgo-tiny"
QA = [
    ("高血压患者平时要注意什么？", "规律服药，低盐低脂饮食，适量运动，定期监测血压。"),
    ("糖尿病人能吃水果吗？", "血糖控制平稳时可少量吃低糖水果，放在两餐之间。"),
    ("感冒发烧怎么办？", "多饮水多休息，体温超过38.5度可服退烧药，持续高热应就医。"),
    ("头痛伴呕吐要紧吗？", "需警惕颅内病变，应尽快就医做头颅CT检查。"),
    ("胃痛反酸是什么原因？", "可能是胃炎或反流性食管炎，应规律饮食，必要时做胃镜。"),
    ("失眠怎么调理？", "规律作息，睡前少看手机，避免咖啡浓茶，长期失眠应就诊。"),
    ("咳嗽两周不好怎么办？", "应就医查血常规和胸片，排除肺炎等感染。"),
    ("孕妇可以吃感冒药吗？", "孕期用药须遵医嘱，多数感冒药不宜自行服用。"),
]
SYSTEM = "你是一名谨慎的医生助手。"


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Eight dialogues as each stage's rows: one optimizer step (8 sequences) each."""
    if not (TINY / "base").is_dir():
        pytest.skip(f"medgo-tiny is not built at {TINY} (medgo-train build-tiny)")
    root = tmp_path_factory.mktemp("zero3-data")
    chats = [{"messages": [{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
             for q, a in QA]
    others = [a for _, a in QA[1:] + QA[:1]]
    return {
        "pretrain": _jsonl(root / "text.jsonl", [{"text": q + a} for q, a in QA * 2]),
        "sft": _jsonl(root / "sft.jsonl", chats * 2),
        "dpo": _jsonl(root / "dpo.jsonl", [{"prompt": q, "chosen": a, "rejected": o}
                                           for (q, a), o in zip(QA, others, strict=True)]),
        "kto": _jsonl(root / "kto.jsonl", [{"prompt": q, "completion": a if i % 2 else o,
                                            "label": bool(i % 2)}
                                           for i, ((q, a), o) in enumerate(
                                               zip(QA, others, strict=True))]),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, data: dict[str, str]) -> Path:
    """The SFT policy merged outside any training process: what DPO/KTO start from."""
    from medgo_trainer.training.export import export

    out = tmp_path_factory.mktemp("zero3-ref") / "sft-merged"
    export(TINY / "base", [TINY / "adapters" / "sft"], out, progress=False)
    return out


def _paths(stage: str, data: dict[str, str], reference: Path | None) -> dict[str, Any]:
    paths: dict[str, Any] = {"base": str(TINY / "base"), "data.train": [data[stage]]}
    if stage in ("pretrain", "sft"):  # tokenised once by rank 0, beside the data
        paths["data.eval"] = [data[stage]]
        paths["data.tokenized_cache"] = str(Path(data[stage]).parent / f"tokenized-{stage}")
    else:
        paths.update(adapter=str(TINY / "adapters" / "sft"), reference=str(reference))
    return paths


def _run(stage: str, out: Path, sets: list[str]) -> tuple[Launch, Launch]:
    """Launch, SIGKILL after step 3, launch again: (killed, resumed)."""
    recipe = f"medgo-72b-{stage}"
    killed = launch(stage, recipe, out, sets, kill_at_step=3)
    done = launch(stage, recipe, out, sets)
    assert done.returncode == 0, done.output[-4000:]
    return killed, done


@pytest.fixture(scope="module")
def pretrain_run(tmp_path_factory, data) -> tuple[Path, Launch, Launch]:
    out = tmp_path_factory.mktemp("zero3") / "pretrain"
    return out, *_run("pretrain", out, overrides(_paths("pretrain", data, None)))


@pytest.fixture(scope="module")
def sft_run(tmp_path_factory, data) -> tuple[Path, Launch, Launch]:
    out = tmp_path_factory.mktemp("zero3") / "sft"
    return out, *_run("sft", out, overrides(_paths("sft", data, None)))


@pytest.fixture(scope="module")
def dpo_run(tmp_path_factory, data, reference) -> tuple[Path, Launch, Launch]:
    out = tmp_path_factory.mktemp("zero3") / "dpo"
    return out, *_run("dpo", out, overrides(_paths("dpo", data, reference)))


@pytest.fixture(scope="module")
def kto_run(tmp_path_factory, data, reference) -> tuple[Path, Launch, Launch]:
    out = tmp_path_factory.mktemp("zero3") / "kto"
    return out, *_run("kto", out, overrides(_paths("kto", data, reference)))


def _flat(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict) and key in ("data", "trl", "lora"):
            flat.update(_flat(value, f"{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@pytest.mark.parametrize("stage", ["pretrain", "sft", "dpo", "kto"])
def test_a_rehearsal_changes_only_paths_and_sizes(stage, tmp_path):
    files = {s: "x.jsonl" for s in ("pretrain", "sft", "dpo", "kto")}
    paths = _paths(stage, files, tmp_path / "sft-merged")
    plain = load_recipe(RECIPES_DIR / f"medgo-72b-{stage}.yaml", check_data=False)
    shrunk = load_recipe(RECIPES_DIR / f"medgo-72b-{stage}.yaml", overrides(paths),
                         check_data=False)
    before, after = _flat(plain.to_dict()), _flat(shrunk.to_dict())
    changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    assert changed <= ALLOWED_OVERRIDES
    assert after["trl.deepspeed"] == before["trl.deepspeed"]  # the same ZeRO-3 config
    assert after["trl.bf16"] is True and after["trl.gradient_checkpointing"] is True
    assert after["trl.resume_from_checkpoint"] == "auto"
    with pytest.raises(ValueError, match="overrides only"):
        overrides({"trl.deepspeed": "other.json"})


def _evals(run: Launch) -> list[float]:
    import re

    return [float(v) for v in re.findall(r"'eval_loss': '?([0-9.]+)", run.output)]


def _assert_shards(out: Path) -> None:
    last = out / f"checkpoint-{SIZES['trl.max_steps']}"
    shards = last / f"global_step{SIZES['trl.max_steps']}"
    for rank in (0, 1):
        assert (shards / f"zero_pp_rank_{rank}_mp_rank_00_model_states.pt").is_file()
        assert list(shards.glob(f"*zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"))
    assert (last / "latest").read_text().strip() == shards.name
    assert (out / "adapter_model.safetensors").is_file()  # gathered from the shards


def _assert_resumed_where_it_stopped(killed: Launch, resumed: Launch) -> None:
    assert killed.returncode != 0 and len(killed.steps) == 3  # SIGKILLed after step 3
    again = resumed.steps[0]  # from checkpoint-2: step 3 is the first one run again
    assert len(resumed.steps) == SIZES["trl.max_steps"] - 2
    for key in ("loss", "learning_rate", "epoch", "num_input_tokens_seen", "logps/chosen"):
        if key in again or key in killed.steps[2]:
            assert again[key] == pytest.approx(killed.steps[2][key], rel=1e-3), key
    assert killed.steps[0]["learning_rate"] == 0.0  # warm-up, then the cosine decays
    lrs = [s["learning_rate"] for s in killed.steps[1:] + resumed.steps[1:]]
    assert lrs == sorted(lrs, reverse=True)


def _record(out: Path) -> dict[str, Any]:
    return json.loads((out / "metrics.json").read_text())


def test_pretrain_killed_mid_way_resumes_learns_and_saves_shards(pretrain_run, data):
    out, killed, resumed = pretrain_run
    _assert_resumed_where_it_stopped(killed, resumed)
    assert _evals(resumed)[-1] < _evals(killed)[0]  # held-out loss: step 6 below step 2
    _assert_shards(out)
    recipe = load_recipe(out / "recipe.resolved.yaml")
    assert _record(out)["data_hash"] == data_snapshot_hash(recipe)


def test_sft_killed_mid_way_resumes_at_the_right_step_rate_and_data(sft_run):
    out, killed, resumed = sft_run
    _assert_resumed_where_it_stopped(killed, resumed)
    assert _evals(resumed)[-1] < _evals(killed)[0]  # held-out loss: step 6 below step 2
    _assert_shards(out)
    assert _record(out)["data_hash"]


def test_dpo_killed_resumed_and_its_reference_is_the_exported_sft_policy(dpo_run, reference,
                                                                          data, tmp_path):
    out, killed, resumed = dpo_run
    _assert_resumed_where_it_stopped(killed, resumed)
    _assert_shards(out)
    first = killed.steps[0]  # all 8 pairs, before any update: policy == initial policy
    assert first["rewards/chosen"] == pytest.approx(0.0, abs=1e-3)  # reference == policy
    assert resumed.steps[-1]["loss"] < first["loss"]
    merged, base = _mean_reference_logps(data["dpo"], reference, tmp_path)
    assert first["logps/chosen"] == pytest.approx(merged, rel=2e-2)
    assert abs(base - merged) > 4 * abs(first["logps/chosen"] - merged)
    serving = json.loads((out / "serving" / "adapter_config.json").read_text())
    assert serving["r"] == _record(out)["metrics"]["serving_rank"] == 8 + 16  # SFT + delta


def _mean_reference_logps(rows: str, reference: Path, tmp_path: Path) -> tuple[float, float]:
    """
    Mean chosen log-probability of the 8 pairs under the merged SFT model, and under the
    raw base, computed here in float32 without DeepSpeed by TRL's own reference code.
    """
    import torch
    from medgo_trainer.training.stages.preference import build_trainer

    means = []
    for start in (reference, None):
        sets = [f"base={TINY / 'base'}", f"adapter={TINY / 'adapters' / 'sft'}",
                f"data.train=[{rows}]", "trl.deepspeed=null", "trl.bf16=false",
                "trl.use_cpu=true", "trl.max_length=128", "trl.resume_from_checkpoint=null",
                "trl.per_device_train_batch_size=8", "trl.gradient_checkpointing=false",
                "trl.model_init_kwargs={attn_implementation: sdpa, dtype: float32}",
                f"reference={start}" if start else "reference=null"]
        recipe = load_recipe(RECIPES_DIR / "medgo-72b-dpo.yaml", sets)
        if start is None:  # the wrong reference: the base without the SFT adapter
            recipe.adapter = None
        trainer = build_trainer(recipe, tmp_path / f"ref-{start is None}", progress=False)
        batch = next(iter(trainer.get_train_dataloader()))
        chosen, _ = trainer.compute_ref_log_probs(trainer.model, batch)
        means.append(float(torch.mean(chosen)))
    return means[0], means[1]


def test_kto_killed_resumed_trains_and_composes_the_serving_adapter_apart(kto_run):
    out, killed, run = kto_run
    _assert_resumed_where_it_stopped(killed, run)
    assert run.steps[-1]["loss"] < killed.steps[0]["loss"]
    _assert_shards(out)
    metrics = _record(out)["metrics"]
    assert metrics["serving_rank"] == 24
    assert (out / "serving" / "adapter_model.safetensors").is_file()
    assert "composing the serving adapter failed" not in run.output
