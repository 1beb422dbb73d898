"""The recipe's data files: read as datasets, and hashed as the run's data snapshot.

Apart from `base` so that the tokenised-data cache (`tokenized.py`), which `base` uses,
can read and hash the same files without importing `base` back.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from medgo_trainer.training.recipe import Recipe


def data_snapshot_hash(recipe: Recipe) -> str:
    """Content hash of every data file, in recipe order, so lineage survives renames."""
    digest = hashlib.sha256()
    for group in (recipe.data.train, recipe.data.eval):
        for name in group:
            digest.update(Path(name).read_bytes())
        digest.update(b"\0split\0")
    return digest.hexdigest()


def load_splits(recipe: Recipe) -> tuple[Any, Any | None]:
    """The train and (optional) held-out `datasets.Dataset`s named by the recipe."""
    from datasets import load_dataset

    train = load_dataset("json", data_files=recipe.data.train, split="train")
    if recipe.data.max_train_samples is not None:
        train = train.select(range(min(recipe.data.max_train_samples, len(train))))
    held_out = None
    if recipe.data.eval:
        held_out = load_dataset("json", data_files=recipe.data.eval, split="train")
    return train, held_out
