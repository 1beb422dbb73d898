"""Kahneman-Tversky Optimisation for unpaired acceptable / unacceptable ratings.

Most clinician ratings are a single verdict on a single answer, with no second answer
to pair it with; KTO (Ethayarajh et al., 2024) learns from exactly that:
`{prompt, completion, label}` rows, `label` true for acceptable. As for DPO, the SFT
adapter is merged into the base first and a new LoRA adapter is trained on top, so
TRL's `ref_model=None` reference is the SFT policy, and `<out>/serving/` holds the
SFT + KTO adapter to serve on the raw base (within `max_serving_rank`, as for DPO).

    medgo-train kto --recipe medgo-tiny-kto --out var/runs/kto \\
        --set data.train=var/exports/kto.jsonl
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medgo_trainer.recipe import Recipe
from medgo_trainer.stages import RunResult, add_stage_parser, require_stage
from medgo_trainer.stages.preference import build_preference_trainer, finish_preference


def build_trainer(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> Any:
    """A ready `KTOTrainer` (tests use it to inspect the reference before training)."""
    from trl import KTOTrainer

    require_stage(recipe, "kto")
    return build_preference_trainer(KTOTrainer, recipe, out_dir, progress=progress)


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Align `recipe.base` + SFT `recipe.adapter` on unpaired verdicts."""
    return finish_preference(build_trainer(recipe, out_dir, progress=progress), recipe, out_dir)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train kto`."""
    add_stage_parser(subparsers, "kto", __doc__ or "", run)
