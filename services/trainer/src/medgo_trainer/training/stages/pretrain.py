"""Causal-LM pre-training with packing: medgo-tiny from scratch, or MedGo's continued
pre-training of Qwen2-72B on the cleaned medical corpus (paper, section 3.1).

TRL's `SFTTrainer` on a `text` dataset *is* causal-LM training: with
`packing_strategy: wrapped` the documents are concatenated and cut into `max_length`
blocks (nanoGPT's `train.bin`), so no token is wasted on padding.

    medgo-train pretrain --recipe recipes/medgo-tiny-pretrain.yaml --out var/runs/pt \\
        --set data.train=corpus.jsonl --set trl.max_steps=50
"""

from __future__ import annotations

from pathlib import Path

from medgo_trainer.training.recipe import Recipe
from medgo_trainer.training.stages.base import RunResult, fit_sft_trainer, require_stage


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Pre-train `recipe.base` (or a fresh `recipe.model` init) on `text` rows."""
    require_stage(recipe, "pretrain")
    return fit_sft_trainer(recipe, out_dir, progress=progress)
