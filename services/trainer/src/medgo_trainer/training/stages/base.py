"""What every training stage shares: loading data and model, and finishing a run.

Each stage module (`pretrain`, `sft`, `preference` for DPO and KTO) exposes the same
entry point,

    run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult

that builds one TRL trainer from the recipe, trains, and returns a `RunResult`. The
pieces below keep those modules to the part that differs: which trainer, which data.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgo_trainer.outputs import METRICS_FILE, RESOLVED_RECIPE
from medgo_trainer.training.recipe import Recipe, RecipeError
from medgo_trainer.training.stages.datafiles import data_snapshot_hash, load_splits
from medgo_trainer.training.stages.memory import log_line, rank_memory

log = logging.getLogger(__name__)


@dataclass
class RunResult:
    """
    What a stage produced.

    Parameters:
        out_dir (`Path`): the checkpoint (full model dir, or PEFT adapter dir with LoRA).
        metrics (`dict`): `train_loss`, `train_tokens`, `train_seconds`,
            `tokens_per_second`; with held-out data also `eval_loss`, `eval_perplexity` and
            the same before training (`initial_eval_loss`, `initial_eval_perplexity`);
            the rank's memory (`model_state_mib`, `peak_rss_mib`, parameter counts).
        recipe_path (`Path`): the resolved recipe saved beside the checkpoint.
        data_hash (`str`): sha256 over the training and held-out files (the data snapshot
            the registry records as lineage).
    """

    out_dir: Path
    metrics: dict[str, float] = field(default_factory=dict)
    recipe_path: Path | None = None
    data_hash: str = ""


StageRun = Callable[..., RunResult]
"""`run(recipe, out_dir, *, progress=True) -> RunResult`, the entry point of a stage."""


def record_data_hash(recipe: Recipe) -> str:
    """
    The data snapshot hash, computed once per run before training, on rank 0 only (every
    rank reads the same files; one digest is the record) — never re-read at the end.
    Other ranks get "" and record nothing.
    """
    from medgo_trainer.training.stages.backend import is_main_process

    return data_snapshot_hash(recipe) if is_main_process() else ""


def load_tokenizer(recipe: Recipe) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(recipe.base)


def load_model(recipe: Recipe, tokenizer: Any, init_kwargs: dict[str, Any] | None) -> Any:
    """
    The starting policy: a fresh Qwen2 init (`recipe.model`), the exported merged policy
    (`recipe.reference`, checked to be `base` + `adapter`), or `recipe.base` with
    `recipe.adapter` merged in here, so a new LoRA adapter trains on top of the previous
    stage and TRL's `ref_model=None` reference is that merged policy. Under ZeRO-3 the
    validator has already required `reference`: loading is partitioned there.
    """
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kwargs = dict(init_kwargs or {})
    if recipe.model is not None:
        torch.manual_seed(recipe.seed)
        config = Qwen2Config(
            **recipe.model,
            vocab_size=len(tokenizer),
            bos_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        config._attn_implementation = kwargs.get("attn_implementation", "sdpa")
        return Qwen2ForCausalLM(config).to(_dtype(kwargs.get("dtype", "float32")))
    if recipe.reference is not None:
        from medgo_trainer.training.export import check_export

        check_export(Path(recipe.reference), recipe.base, [str(recipe.adapter)])
        return AutoModelForCausalLM.from_pretrained(recipe.reference, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(recipe.base, **kwargs)
    if recipe.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, recipe.adapter).merge_and_unload()
    return model


def require_stage(recipe: Recipe, stage: str) -> None:
    if recipe.stage != stage:
        raise RecipeError(f"stage: this is the {stage} stage, the recipe is for {recipe.stage}")


def build_sft_trainer(recipe: Recipe, out_dir: Path, *, progress: bool) -> Any:
    """
    TRL's `SFTTrainer` for the recipe, which serves both pretrain (`text` rows, packed)
    and sft (`messages` rows rendered by the tokenizer's chat template; with
    `assistant_only_loss`, through `chat.training_template`, so only the answers carry
    loss). Tests use it to inspect the collated batches.
    """
    from medgo_trainer.training.recipe import build_lora_config
    from medgo_trainer.training.stages.chat import training_template
    from trl import SFTTrainer

    args, init_kwargs = trainer_args(recipe, out_dir, progress=progress)
    tokenizer = load_tokenizer(recipe)
    with training_template(tokenizer, enabled=getattr(args, "assistant_only_loss", False)):
        train, held_out = _training_data(recipe, args, tokenizer)
        return SFTTrainer(
            model=load_model(recipe, tokenizer, init_kwargs),
            args=args,
            train_dataset=train,
            eval_dataset=held_out,
            processing_class=tokenizer,
            peft_config=build_lora_config(recipe),
        )


def _training_data(recipe: Recipe, args: Any, tokenizer: Any) -> tuple[Any, Any | None]:
    """
    The rows `SFTTrainer` gets: as read, for TRL to tokenise on every rank behind its
    barrier; or, with `data.tokenized_cache`, tokenised once by rank 0 into the shared
    cache (`stages/tokenized.py`), where TRL sees `input_ids` and only packs.
    """
    if recipe.data.tokenized_cache is None:
        return load_splits(recipe)
    from medgo_trainer.training.stages.backend import is_main_process
    from medgo_trainer.training.stages.tokenized import tokenized_splits

    return tokenized_splits(recipe, args, tokenizer, is_main=is_main_process())


def fit_sft_trainer(recipe: Recipe, out_dir: Path, *, progress: bool) -> RunResult:
    """Build the `SFTTrainer` (`build_sft_trainer`), train, save and record."""
    return finish(build_sft_trainer(recipe, out_dir, progress=progress), recipe, out_dir)


def finish(
    trainer: Any,
    recipe: Recipe,
    out_dir: Path,
    *,
    after_save: Callable[[], dict[str, float]] | None = None,
) -> RunResult:
    """
    Train-side bookkeeping common to all stages: evaluate, save, record.

    `trainer.save_model` (not `model.save_pretrained`) because under ZeRO-3 the weights
    are sharded across ranks: it gathers them and lets only the main process write
    them, with the trainer's tokenizer (its `processing_class`).
    Only the main process records the run, and `metrics.json` is written last — after
    `after_save` (the preference stages compose the served adapter there) — because
    its presence is what tells the job API and the loop that the run is complete.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    data_hash = record_data_hash(recipe)  # before training, once
    metrics: dict[str, float] = {}
    # The starting point, so the gain is visible; not under DeepSpeed, where an evaluation
    # before training builds an inference engine and the Trainer then has no training
    # engine to step (transformers 5.19). The logged training losses show the gain there.
    if trainer.eval_dataset is not None and not trainer.is_deepspeed_enabled:
        metrics.update({f"initial_{k}": v for k, v in held_out_metrics(trainer).items()})
    train_out = trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    metrics["train_loss"] = float(train_out.training_loss)
    metrics["train_seconds"] = float(train_out.metrics.get("train_runtime", 0.0))
    memory = rank_memory(trainer.model)  # before evaluation: model states only
    log.info(log_line(trainer.args.process_index, memory))
    metrics.update(memory)
    tokens = float(getattr(trainer.state, "num_input_tokens_seen", 0) or 0)
    if tokens:
        metrics["train_tokens"] = tokens
        metrics["tokens_per_second"] = tokens / max(metrics["train_seconds"], 1e-9)
    if trainer.eval_dataset is not None:
        metrics.update(held_out_metrics(trainer))
    trainer.save_model(str(out_dir))
    result = RunResult(out_dir, metrics, out_dir / RESOLVED_RECIPE, data_hash)
    if not trainer.is_world_process_zero():
        return result
    recipe.save(result.recipe_path)
    if after_save is not None:
        metrics.update(after_save())
    (out_dir / METRICS_FILE).write_text(json.dumps(
        {"metrics": metrics, "data_hash": result.data_hash}, indent=2))
    return result


def held_out_metrics(trainer: Any) -> dict[str, float]:
    """Held-out loss and its perplexity (exp of the mean token loss)."""
    loss = float(trainer.evaluate()["eval_loss"])
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 50.0))}


def _dtype(name: Any) -> Any:
    import torch

    return name if isinstance(name, torch.dtype) else getattr(torch, str(name))


def trainer_args(recipe: Recipe, out_dir: Path, *, progress: bool) -> tuple[Any, dict[str, Any]]:
    """
    The stage's TRL config with every recipe field in force, and the model-init kwargs
    taken out of it: stages instantiate the model themselves (fresh init, merged adapter),
    so TRL must not also try to.
    """
    from medgo_trainer.training.recipe import build_trl_config
    from medgo_trainer.training.stages.backend import for_this_machine, is_main_process
    from medgo_trainer.training.stages.resume import resolve_resume

    machine = dataclasses.replace(recipe, trl=for_this_machine(recipe.trl))
    args = build_trl_config(machine, out_dir)
    if not progress:
        args.disable_tqdm = True
    init_kwargs = dict(args.model_init_kwargs or {})
    args.model_init_kwargs = None
    args.resume_from_checkpoint = resolve_resume(
        args.resume_from_checkpoint, out_dir, recipe,
        world_size=args.world_size if args.deepspeed else None)
    if is_main_process():  # a restart checks its recipe against this one
        recipe.save(out_dir / RESOLVED_RECIPE)
    return args, init_kwargs
