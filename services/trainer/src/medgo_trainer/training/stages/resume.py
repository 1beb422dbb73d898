"""Resuming an interrupted run from its last Trainer checkpoint — or refusing clearly.

`Trainer.train(resume_from_checkpoint=...)` restores weights, optimizer, scheduler and
RNG state from `<out_dir>/checkpoint-<step>/`, but a truncated file there surfaces as
an opaque safetensors or pickle error after the model is loaded. `resolve_resume`
checks the checkpoint's files first, so a corrupt one is reported (with the fix:
delete it and resume from the previous one) before any compute is spent.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from medgo_trainer.training.recipe import RecipeError

#: `last` picks the newest `checkpoint-*` under the run's output directory (one must
#: exist); `auto` does the same but starts fresh when there is none — what a restarted
#: Kubernetes pod wants.
LAST, AUTO = "last", "auto"
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors")


def resolve_resume(resume: str | None, out_dir: Path) -> str | None:
    """`None`, `"last"`, `"auto"` or a checkpoint path → a verified checkpoint path or None."""
    if resume is None:
        return None
    if resume in (LAST, AUTO):
        from transformers.trainer_utils import get_last_checkpoint

        found = get_last_checkpoint(str(out_dir)) if out_dir.is_dir() else None
        if found is None and resume == AUTO:
            return None
        if found is None:
            raise RecipeError(f"resume: no checkpoint-* directory under {out_dir} to resume from")
        resume = found
    path = Path(resume)
    verify_checkpoint(path)
    return str(path)


def verify_checkpoint(path: Path) -> None:
    """Raise `RecipeError` unless `path` holds a complete, readable Trainer checkpoint."""
    if not path.is_dir():
        raise RecipeError(f"resume: checkpoint {path} does not exist")
    hint = f"delete {path} and resume from the previous checkpoint"
    try:
        state = json.loads((path / "trainer_state.json").read_text(encoding="utf-8"))
        int(state["global_step"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise RecipeError(f"resume: {path} is corrupt (trainer_state.json: {exc}); {hint}") from exc
    weights = [path / name for name in _WEIGHTS if (path / name).exists()]
    if not weights:
        raise RecipeError(f"resume: {path} holds no model or adapter weights; {hint}")
    from safetensors import safe_open

    for file in weights:
        try:
            with safe_open(str(file), framework="pt") as fh:
                for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                    fh.get_slice(key)
        except Exception as exc:  # safetensors raises its own untyped errors
            raise RecipeError(f"resume: {file} is corrupt ({exc}); {hint}") from exc
    for name in ("optimizer.pt", "scheduler.pt"):
        file = path / name
        if file.exists() and not zipfile.is_zipfile(file):
            raise RecipeError(f"resume: {file} is corrupt (not a torch archive); {hint}")
