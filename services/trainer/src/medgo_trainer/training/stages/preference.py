"""Preference alignment from clinicians' ratings: DPO and KTO, one stage implementation.

**DPO** (paper, section 3.3) learns from `{prompt, chosen, rejected}` pairs — a
corrected answer against the rejected one, or an acceptable against an unacceptable
answer to the same prompt. **KTO** (Ethayarajh et al., 2024) learns from unpaired
`{prompt, completion, label}` verdicts, which is what most ratings are. The two differ
only in TRL's trainer class and the row shape, so one implementation serves both,
parameterised by `TRAINERS`.

The reference policy is the SFT model, not the raw base: `load_model` loads the SFT
adapter (`recipe.adapter`) merged into the base weights — by `medgo-train export` before
training (`recipe.reference`, required under ZeRO-3, where the loaded weights are
partitioned placeholders PEFT cannot merge), or merged in-process without DeepSpeed. A
*new* LoRA adapter (`recipe.lora`) is trained on top, and TRL's `ref_model=None` then
computes reference log-probs with that new adapter disabled — i.e. with the merged SFT
policy (DPO paper, section 4: π_ref = π_SFT). `tests/training/stages/test_dpo.py` checks
this against an unmerged base + SFT adapter, `test_zero3.py` under ZeRO-3 against the
exported merged model.

The feedback service exports JSONL in TRL's field names, where `prompt` is either a
string or a list of chat messages. Every row is validated *before* a model is loaded, so
a truncated export or a row missing a field fails with its file and line, not as a
tensor-shape error mid-run. Rows are then put into TRL's conversational form so the
tokenizer's ChatML template renders them exactly as vLLM's chat endpoint does at serving
time. Rows are held in memory as a `datasets.Dataset`: preference sets are ratings (about
ten thousand a year for MedGo), not corpora.

Resume an interrupted run with `--set trl.resume_from_checkpoint=last` (or a
`checkpoint-N` path). `<out>/serving/` holds the adapter to serve on the raw base: SFT
and preference adapters concatenated, or compressed by SVD to the recipe's
`max_serving_rank` (`compose_serving_adapter`; its error is in `metrics.json`).

    medgo-train dpo --recipe medgo-tiny-dpo --out var/runs/dpo \\
        --set data.train=var/exports/dpo.jsonl
    medgo-train kto --recipe medgo-tiny-kto --out var/runs/kto \\
        --set data.train=var/exports/kto.jsonl
    medgo-train dpo --recipe medgo-72b-dpo --out /ckpt/dpo   # under torchrun / k8s
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from medgo_trainer.training.recipe import Recipe, RecipeError
from medgo_trainer.training.stages.base import RunResult, finish

log = logging.getLogger(__name__)

_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})
_COMPLETIONS = {"dpo": ("chosen", "rejected"), "kto": ("completion",)}
#: Preference stage → the TRL trainer class that implements it.
TRAINERS = {"dpo": "DPOTrainer", "kto": "KTOTrainer"}


def _messages(value: Any, where: str, field: str, default_role: str) -> list[dict[str, str]]:
    """A string or a list of `{role, content}` messages → a non-empty message list."""
    if isinstance(value, str):
        if not value.strip():
            raise RecipeError(f"{where}: {field!r} is empty")
        return [{"role": default_role, "content": value}]
    if not isinstance(value, list) or not value:
        raise RecipeError(f"{where}: {field!r} must be a string or a non-empty message list")
    out = []
    for msg in value:
        if not isinstance(msg, dict) or msg.get("role") not in _ROLES:
            raise RecipeError(f"{where}: {field!r} holds a message without a valid role")
        if not isinstance(msg.get("content"), str):
            raise RecipeError(f"{where}: {field!r} holds a message whose content is not text")
        out.append({"role": msg["role"], "content": msg["content"]})
    return out


def normalise_row(row: Any, stage: str, where: str) -> dict[str, Any]:
    """One export row → TRL's conversational row for `stage` (`dpo` or `kto`)."""
    if not isinstance(row, dict):
        raise RecipeError(f"{where}: expected a JSON object, got {type(row).__name__}")
    needed = ("prompt", *_COMPLETIONS[stage], *(("label",) if stage == "kto" else ()))
    missing = [k for k in needed if k not in row]
    if missing:
        raise RecipeError(f"{where}: row lacks {missing} (stage {stage} needs {list(needed)})")
    out: dict[str, Any] = {"prompt": _messages(row["prompt"], where, "prompt", "user")}
    for key in _COMPLETIONS[stage]:
        out[key] = _messages(row[key], where, key, "assistant")
    if stage == "kto":
        if not isinstance(row["label"], bool):
            raise RecipeError(f"{where}: 'label' must be true or false, got {row['label']!r}")
        out["label"] = row["label"]
    return out


def read_rows(files: list[str], stage: str, limit: int | None = None) -> list[dict[str, Any]]:
    """Every row of the JSONL files, validated and normalised; errors name file:line."""
    rows: list[dict[str, Any]] = []
    for name in files:
        path = Path(name)
        try:
            fh = path.open(encoding="utf-8")
        except OSError as exc:
            raise RecipeError(f"data: cannot read {path}: {exc.strerror}") from exc
        with fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                where = f"data: {path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RecipeError(f"{where}: not valid JSON ({exc.msg})") from exc
                rows.append(normalise_row(row, stage, where))
                if limit is not None and len(rows) >= limit:
                    return rows
    if not rows:
        raise RecipeError(f"data: {', '.join(files)} holds no {stage} rows")
    return rows


def load_preference_splits(recipe: Recipe) -> tuple[Any, Any | None]:
    """Train and optional held-out `Dataset`s for a DPO or KTO recipe."""
    from datasets import Dataset

    train = Dataset.from_list(read_rows(recipe.data.train, recipe.stage,
                                        recipe.data.max_train_samples))
    held_out = None
    if recipe.data.eval:
        held_out = Dataset.from_list(read_rows(recipe.data.eval, recipe.stage))
    return train, held_out


def build_trainer(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> Any:
    """
    A ready `DPOTrainer` or `KTOTrainer` (by `recipe.stage`) with the SFT policy as
    reference (tests use it to inspect the reference before training).

    Checks run cheapest first — resume checkpoint, every data row — and
    only then is the model loaded (`load_model`: the exported SFT policy
    `recipe.reference`, or the SFT adapter `recipe.adapter` merged into the base here).
    `ref_model=None` with a new `peft_config` LoRA makes TRL compute reference log-probs
    with that new adapter disabled: the merged SFT policy.
    """
    import trl
    from medgo_trainer.training.recipe import build_lora_config
    from medgo_trainer.training.stages.base import load_model, load_tokenizer, trainer_args

    if recipe.stage not in TRAINERS:
        raise RecipeError(f"stage: the preference stages are {' and '.join(TRAINERS)}, "
                          f"the recipe is for {recipe.stage}")
    trainer_cls = getattr(trl, TRAINERS[recipe.stage])
    args, init_kwargs = trainer_args(recipe, out_dir, progress=progress)
    train, held_out = load_preference_splits(recipe)
    tokenizer = load_tokenizer(recipe)
    return trainer_cls(
        model=load_model(recipe, tokenizer, init_kwargs),
        ref_model=None,
        args=args,
        train_dataset=train,
        eval_dataset=held_out,
        processing_class=tokenizer,
        peft_config=build_lora_config(recipe),
    )


#: Subdirectory of a DPO/KTO run holding the adapter inference serves on the raw base.
SERVING_ADAPTER = "serving"


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Align `recipe.base` + SFT `recipe.adapter` on preference pairs or verdicts."""
    return finish_preference(build_trainer(recipe, out_dir, progress=progress), recipe, out_dir)


def finish_preference(trainer: Any, recipe: Recipe, out_dir: Path) -> RunResult:
    """
    Train and save (`stages.finish`), composing `<out>/serving/` before the run is
    recorded complete; its rank and compression error go into `metrics.json`.

    `finish` runs the composition on the main process only: it loads the base once
    more, and under torchrun every rank would otherwise hold its own copy of a 72B base.
    In a distributed run it runs in a separate process (`compose_in_subprocess`): under
    ZeRO-3, loading a model in this one would be partitioned (`zero.Init`), a
    collective the other ranks, done with training, never join — a hang.
    """

    def compose() -> dict[str, float]:
        from medgo_trainer.training.stages.backend import is_partitioned

        call = (compose_in_subprocess if is_partitioned() or trainer.args.world_size > 1
                else compose_serving_adapter)
        return call(recipe.base, str(recipe.adapter), out_dir, out_dir / SERVING_ADAPTER,
                    max_rank=recipe.max_serving_rank)

    return finish(trainer, recipe, out_dir, after_save=compose)


#: torchrun's and Accelerate's variables, kept from the composing process.
_JOB_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK",
                  "GROUP_WORLD_SIZE", "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE",
                  "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_", "ACCELERATE_")


def compose_in_subprocess(base: str, sft_adapter: str, delta_adapter: Path, out_dir: Path,
                          *, max_rank: int | None = None) -> dict[str, float]:
    """
    `compose_serving_adapter` in a fresh Python process (`medgo-train compose-serving`)
    without the job's rank variables, so nothing there sees torchrun or DeepSpeed. On a
    GPU node it runs on the node's CPUs after training (docs/training.md: time at 72B).
    """
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(_JOB_VARIABLES)}
    command = [sys.executable, "-m", "medgo_trainer.cli", "compose-serving", "--base", base,
               "--sft-adapter", sft_adapter, "--delta", str(delta_adapter),
               "--out", str(out_dir)]
    if max_rank is not None:
        command += ["--max-rank", str(max_rank)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"composing the serving adapter failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout[done.stdout.index("{\n"):])  # after any library chatter


def compose_serving_adapter(base: str, sft_adapter: str, delta_adapter: Path, out_dir: Path,
                            *, max_rank: int | None = None) -> dict[str, float]:
    """
    One LoRA adapter equal to "SFT adapter, then the DPO/KTO adapter", for the raw base.

    The preference adapter was trained on the SFT-*merged* weights, so on its own it is
    wrong for vLLM, which applies adapters to the raw base. LoRA deltas add up
    (W + B₁A₁s₁ + B₂A₂s₂), so PEFT's `add_weighted_adapter(..., combination_type="cat")`
    concatenates them into a single adapter of rank r₁ + r₂ that is exactly the same
    function. In the feedback loop `sft_adapter` is the previous round's serving
    adapter, so that rank grows every round; above `max_rank` (vLLM's
    `--max-lora-rank` must cover it) the summed delta is compressed instead with PEFT's
    `combination_type="svd"`: per layer, the best rank-`max_rank` approximation of
    B₁A₁s₁ + B₂A₂s₂ (Eckart–Young). What that costs is measured against the exact
    concatenation, layer by layer (relative Frobenius error of the delta), returned
    and logged. For a 72B base this loads the base weights once on the training node,
    after training; the SVDs run on its CPUs.

    Returns `serving_rank`, and after a compression `serving_exact_rank`,
    `serving_svd_rel_error_max` and `serving_svd_rel_error_mean`.
    """
    import shutil
    import tempfile

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base)
    peft = PeftModel.from_pretrained(model, sft_adapter, adapter_name="sft")
    peft.load_adapter(str(delta_adapter), adapter_name="delta")
    peft.add_weighted_adapter(["sft", "delta"], [1.0, 1.0], "exact", combination_type="cat")
    exact_rank = peft.peft_config["exact"].r
    metrics: dict[str, float] = {"serving_rank": exact_rank}
    served = "exact"
    if max_rank is not None and exact_rank > max_rank:
        served = "compressed"
        peft.add_weighted_adapter(["sft", "delta"], [1.0, 1.0], served,
                                  combination_type="svd", svd_rank=max_rank,
                                  svd_full_matrices=False)
        errors = delta_errors(peft, "exact", served)
        metrics = {"serving_rank": max_rank, "serving_exact_rank": exact_rank,
                   "serving_svd_rel_error_max": max(errors),
                   "serving_svd_rel_error_mean": sum(errors) / len(errors)}
        log.info("serving adapter: rank %d exceeds max_serving_rank %d, SVD-compressed; "
                 "relative error of the delta over %d layers: max %.4f, mean %.4f",
                 exact_rank, max_rank, len(errors), metrics["serving_svd_rel_error_max"],
                 metrics["serving_svd_rel_error_mean"])
    with tempfile.TemporaryDirectory(dir=out_dir.parent) as tmp:
        peft.save_pretrained(tmp, selected_adapters=[served])
        shutil.rmtree(out_dir, ignore_errors=True)
        shutil.move(str(Path(tmp) / served), out_dir)
    return metrics


def delta_errors(peft: Any, exact: str, approx: str) -> list[float]:
    """‖ΔW_exact − ΔW_approx‖_F / ‖ΔW_exact‖_F for every LoRA layer holding both."""
    import torch
    from peft.tuners.lora import LoraLayer

    errors = []
    with torch.no_grad():
        for module in peft.modules():
            if isinstance(module, LoraLayer) and {exact, approx} <= set(module.lora_A):
                reference = module.get_delta_weight(exact).float()
                norm = torch.linalg.matrix_norm(reference)
                if norm > 0:
                    diff = reference - module.get_delta_weight(approx).float()
                    errors.append(float(torch.linalg.matrix_norm(diff) / norm))
    return errors
