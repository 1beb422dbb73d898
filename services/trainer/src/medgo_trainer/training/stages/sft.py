"""Supervised fine-tuning with LoRA on chat data (paper, section 3.2).

Rows are `{"messages": [{"role": "user", ...}, {"role": "assistant", ...}]}`; TRL's
`SFTTrainer` renders them with the tokenizer's ChatML template, so the model learns to
answer after `<|im_start|>assistant` and to stop at `<|im_end|>` - exactly what vLLM's
chat endpoint sends and expects. With `lora:` set, only the adapter is trained and saved
(PEFT format, served by vLLM with `--lora-modules`).

    medgo-train sft --recipe medgo-tiny-sft --out var/runs/sft \\
        --set base=var/models/medgo-tiny/base --set data.train=chat.jsonl
    medgo-train sft --recipe medgo-72b-sft --out /ckpt/sft --set base=/models/Qwen2-72B
"""

from __future__ import annotations

from pathlib import Path

from medgo_trainer.training.recipe import Recipe
from medgo_trainer.training.stages.base import RunResult, fit_sft_trainer, require_stage


def run(recipe: Recipe, out_dir: Path, *, progress: bool = True) -> RunResult:
    """Fine-tune `recipe.base` (+ `recipe.adapter`) on `messages` rows."""
    require_stage(recipe, "sft")
    return fit_sft_trainer(recipe, out_dir, progress=progress)
