"""The recipe's data files: read as datasets, and hashed as the run's data snapshot.

Apart from `base` so that the tokenised-data cache (`tokenized.py`), which `base` uses,
can read and hash the same files without importing `base` back.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from medgo_trainer.training.recipe import Recipe


def data_snapshot_hash(recipe: Recipe) -> str:
    """
    Content hash of every data file, in recipe order, so lineage survives renames.
    Read once per process for files unchanged since (path, size, mtime): rank 0 needs it
    for the tokenised-data cache's key and again for the run's record, and at 14 B tokens
    each read is ~40 GB.
    """
    groups = tuple(tuple(_identity(Path(name)) for name in group)
                   for group in (recipe.data.train, recipe.data.eval))
    return _hash_files(groups)


def _identity(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=8)
def _hash_files(groups: tuple[tuple[tuple[str, int, int], ...], ...]) -> str:
    digest = hashlib.sha256()
    for group in groups:
        for name, _, _ in group:
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
