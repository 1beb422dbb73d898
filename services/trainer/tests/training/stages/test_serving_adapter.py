"""The served adapter stays within the recipe's `max_serving_rank` round after round.

Two real feedback-loop rounds on medgo-tiny (DPO with the packaged recipe, a few steps
each): the first round's SFT 8 + DPO 8 fits the cap of 16 and is concatenated exactly;
the second round's 16 + 8 = 24 does not and is SVD-compressed to 16. The compressed
adapter is compared with the exact rank-24 composition on real chat prompts.

Measured on this machine with these settings (4 steps per round): relative error of
the compressed delta 2.5 % max / 1.2 % mean over the 28 LoRA layers; logits within
0.011 (max abs) of the exact composition, while the two rounds moved them by about 0.6
from the SFT policy; KL(exact || compressed) 5e-6 per token. With 10 steps per round:
5.4 % / 2.5 % and 0.021. The bounds below are about four times the measurement, so
they fail if the compression goes wrong, not on noise.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from medgo_trainer.outputs import METRICS_FILE
from medgo_trainer.training.recipe import RecipeError, load_recipe, resolve_recipe_path
from medgo_trainer.training.stages.preference import SERVING_ADAPTER, compose_serving_adapter

MAX_DELTA_ERROR = 0.1  # relative Frobenius error of a layer's delta (measured 0.025)
MAX_LOGIT_DIFF = 0.05  # max abs logit difference to the exact composition (measured 0.011)
QUESTIONS = ["高血压患者可以服用布洛芬吗？", "反复胸闷两周需要做哪些检查？",
             "糖尿病患者空腹血糖目标是多少？", "儿童发热何时需要就医？"]


@dataclass(frozen=True)
class TwoRounds:
    base: Path
    sft: Path
    first: Path  # run directories
    second: Path


@pytest.fixture(scope="module")
def two_rounds(medgo_tiny, tmp_path_factory: pytest.TempPathFactory) -> TwoRounds:
    """Round 1 on the SFT adapter, round 2 on round 1's serving adapter (as the loop)."""
    from medgo_trainer.training.stages.preference import run

    root = tmp_path_factory.mktemp("rounds")
    data = root / "dpo.jsonl"
    data.write_text("".join(json.dumps(
        {"prompt": q, "chosen": f"关于“{q}”，请结合病史就诊，由医生评估后决定。",
         "rejected": "不清楚。"}, ensure_ascii=False) + "\n" for q in QUESTIONS * 2),
        encoding="utf-8")
    adapter = medgo_tiny.adapter
    runs = []
    for n in (1, 2):
        recipe = load_recipe(resolve_recipe_path("medgo-tiny-dpo"), [
            f"base={medgo_tiny.base}", f"adapter={adapter}", f"data.train=[{data}]",
            "trl.max_steps=4", 'trl.save_strategy="no"', f"seed={n}"])
        assert recipe.max_serving_rank == 16
        runs.append(root / f"round{n}")
        run(recipe, runs[-1], progress=False)
        adapter = runs[-1] / SERVING_ADAPTER
    return TwoRounds(medgo_tiny.base, medgo_tiny.adapter, *runs)


def _rank(adapter: Path) -> int:
    return json.loads((adapter / "adapter_config.json").read_text())["r"]


def _metrics(run: Path) -> dict[str, float]:
    return json.loads((run / METRICS_FILE).read_text())["metrics"]


def test_each_round_serves_at_most_the_cap(two_rounds: TwoRounds) -> None:
    first, second = _metrics(two_rounds.first), _metrics(two_rounds.second)
    assert _rank(two_rounds.first / SERVING_ADAPTER) == 16  # 8 + 8: exact, no error
    assert first["serving_rank"] == 16 and "serving_exact_rank" not in first
    assert _rank(two_rounds.second / SERVING_ADAPTER) == 16  # 16 + 8 compressed to 16
    assert (second["serving_rank"], second["serving_exact_rank"]) == (16, 24)
    assert 0 < second["serving_svd_rel_error_mean"] <= second["serving_svd_rel_error_max"]
    assert second["serving_svd_rel_error_max"] < MAX_DELTA_ERROR


def test_compressed_round_is_close_to_the_exact_composition(two_rounds: TwoRounds,
                                                             tmp_path: Path) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    exact = tmp_path / "exact"
    metrics = compose_serving_adapter(str(two_rounds.base),
                                      str(two_rounds.first / SERVING_ADAPTER),
                                      two_rounds.second, exact)  # no cap: concatenated
    assert metrics == {"serving_rank": 24} and _rank(exact) == 24
    tokenizer = AutoTokenizer.from_pretrained(two_rounds.base)
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": q}],
                                             add_generation_prompt=True, return_dict=True,
                                             return_tensors="pt")["input_ids"]
               for q in QUESTIONS]

    def logits(adapter: Path) -> list[torch.Tensor]:
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(two_rounds.base), adapter).eval()
        with torch.no_grad():
            return [model(input_ids=ids).logits[0] for ids in prompts]

    reference = logits(exact)
    compressed = logits(two_rounds.second / SERVING_ADAPTER)
    sft = logits(two_rounds.sft)
    for ref, got, start in zip(reference, compressed, sft, strict=True):
        error = (ref - got).abs().max().item()
        assert 0 < error < MAX_LOGIT_DIFF
        assert (ref - start).abs().max().item() > 20 * error  # the rounds' change survives


def test_concatenation_is_kept_when_it_fits_and_compressed_below(micro_policy,
                                                                 tmp_path: Path) -> None:
    """Micro policy: SFT r4 + a random r4 delta; cap 8 is exact, cap 4 is not."""
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    delta = tmp_path / "delta"
    get_peft_model(AutoModelForCausalLM.from_pretrained(micro_policy.base),
                   LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                              init_lora_weights=False, task_type="CAUSAL_LM")
                   ).save_pretrained(delta)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])

    def logits(model) -> torch.Tensor:
        with torch.no_grad():
            return model.eval()(input_ids=ids).logits

    merged = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(micro_policy.base),
                                       micro_policy.sft_adapter).merge_and_unload()
    both = logits(PeftModel.from_pretrained(merged, delta))  # W + ΔW_sft + ΔW_delta

    def served(cap: int) -> tuple[dict[str, float], torch.Tensor]:
        out = tmp_path / f"cap{cap}"
        metrics = compose_serving_adapter(str(micro_policy.base), str(micro_policy.sft_adapter),
                                          delta, out, max_rank=cap)
        assert _rank(out) == cap
        return metrics, logits(PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(micro_policy.base), out))

    metrics, exact = served(8)
    assert metrics == {"serving_rank": 8}
    torch.testing.assert_close(exact, both, atol=1e-5, rtol=1e-5)
    metrics, compressed = served(4)  # two random rank-4 deltas: half the spectrum is cut
    assert metrics["serving_exact_rank"] == 8 and metrics["serving_svd_rel_error_max"] > 0.1
    assert (compressed - both).abs().max() > 1e-3


@pytest.mark.parametrize(("name", "cap"), [("medgo-tiny-dpo", 16), ("medgo-tiny-kto", 16),
                                           ("medgo-72b-dpo", 64)])
def test_packaged_recipes_cap_the_serving_rank(name: str, cap: int) -> None:
    assert load_recipe(resolve_recipe_path(name), check_data=False).max_serving_rank == cap


@pytest.mark.parametrize(("override", "message"), [
    ("max_serving_rank=12", "12 is not a rank vLLM accepts"),
    ("max_serving_rank=true", "True is not a rank vLLM accepts"),
])
def test_a_cap_vllm_cannot_serve_is_refused(override: str, message: str) -> None:
    with pytest.raises(RecipeError, match=message):
        load_recipe(resolve_recipe_path("medgo-tiny-dpo"), [override], check_data=False)


def test_only_preference_stages_take_a_cap() -> None:
    with pytest.raises(RecipeError, match="only dpo and kto compose a serving adapter"):
        load_recipe(resolve_recipe_path("medgo-tiny-sft"), ["max_serving_rank=16"],
                    check_data=False)
