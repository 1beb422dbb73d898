"""Causal-LM pre-training with packing: medgo-tiny from scratch, or MedGo's continued
pre-training of Qwen2-72B on the cleaned medical corpus (paper, section 3.1).

TRL's `SFTTrainer` on a `text` dataset *is* causal-LM training: with
`packing_strategy: wrapped` the documents are concatenated and cut into `max_length`
blocks (nanoGPT's `train.bin`), so no token is wasted on padding.

    medgo-train pretrain --recipe recipes/medgo-tiny-pretrain.yaml --out var/runs/pt \\
        --set data.train=corpus.jsonl --set trl.max_steps=50
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medgo_trainer.recipe import Recipe
from medgo_trainer.stages import RunResult, add_stage_parser, fit_sft_trainer, require_stage


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Pre-train `recipe.base` (or a fresh `recipe.model` init) on `text` rows."""
    require_stage(recipe, "pretrain")
    return fit_sft_trainer(recipe, out_dir, progress=progress)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train pretrain`."""
    add_stage_parser(subparsers, "pretrain", __doc__ or "", run)
