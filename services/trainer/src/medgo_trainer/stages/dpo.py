"""Direct Preference Optimisation from clinicians' ratings (paper, section 3.3).

The reference policy is the SFT model, not the raw base: `load_model` merges the SFT
adapter (`recipe.adapter`) into the base weights, a *new* LoRA adapter (`recipe.lora`)
is trained on top, and TRL's `ref_model=None` then computes reference log-probs with
that new adapter disabled — i.e. with the merged SFT policy (DPO paper, section 4:
π_ref = π_SFT). `tests/stages/test_dpo.py` checks this against an unmerged
base + SFT adapter. The saved adapter is the DPO delta on top of the SFT-merged base.

Data: the feedback store's DPO export, `{prompt, chosen, rejected}` JSONL
(see `stages.preference`). Resume an interrupted run with
`--set trl.resume_from_checkpoint=last` (or a `checkpoint-N` path). `<out>/serving/` holds
the adapter to serve on the raw base: SFT and DPO adapters concatenated, or compressed by
SVD to the recipe's `max_serving_rank` when the concatenation would exceed it (see
`preference.compose_serving_adapter`; its error is in `metrics.json`).

    medgo-train dpo --recipe medgo-tiny-dpo --out var/runs/dpo \\
        --set data.train=var/exports/dpo.jsonl
    medgo-train dpo --recipe medgo-72b-dpo --out /ckpt/dpo   # under torchrun / k8s
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medgo_trainer.recipe import Recipe
from medgo_trainer.stages import RunResult, add_stage_parser, require_stage
from medgo_trainer.stages.preference import build_preference_trainer, finish_preference


def build_trainer(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> Any:
    """A ready `DPOTrainer` (tests use it to inspect the reference before training)."""
    from trl import DPOTrainer

    require_stage(recipe, "dpo")
    return build_preference_trainer(DPOTrainer, recipe, out_dir, progress=progress)


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Align `recipe.base` + SFT `recipe.adapter` on preference pairs."""
    return finish_preference(build_trainer(recipe, out_dir, progress=progress), recipe, out_dir)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train dpo`."""
    add_stage_parser(subparsers, "dpo", __doc__ or "", run)
