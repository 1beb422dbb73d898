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
from typing import Any

from medgo_trainer.training.recipe import Recipe, RecipeError

#: `last` picks the newest `checkpoint-*` under the run's output directory (one must
#: exist); `auto` does the same but starts fresh when there is none — what a restarted
#: Kubernetes pod wants.
LAST, AUTO = "last", "auto"
_WEIGHTS = ("adapter_model.safetensors", "model.safetensors")


def resolve_resume(resume: str | None, out_dir: Path, recipe: Recipe | None = None, *,
                   world_size: int | None = None) -> str | None:
    """
    `None`, `"last"`, `"auto"` or a checkpoint path → a verified checkpoint path or None.

    With `recipe`, the run directory must have been written by the same recipe; with
    `world_size` (DeepSpeed runs) the checkpoint must hold every rank's ZeRO shards.
    """
    if resume is None:
        return None
    if recipe is not None:
        check_same_recipe(out_dir, recipe)
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
    if world_size is not None:
        verify_shards(path, world_size)
    return str(path)


def check_same_recipe(out_dir: Path, recipe: Recipe) -> None:
    """
    A restart must continue the run its directory holds: the recipe saved there at the
    start (`recipe.resolved.yaml`) must equal this one, except for bookkeeping — how to
    resume, how often to save, log and evaluate — which may change between attempts.
    """
    import yaml

    saved = out_dir / "recipe.resolved.yaml"
    if not saved.is_file():
        return
    before = yaml.safe_load(saved.read_text(encoding="utf-8")) or {}
    now = yaml.safe_load(yaml.safe_dump(recipe.to_dict(), allow_unicode=True))
    for side in (before, now):
        trl = side.get("trl") or {}
        for key in [k for k in trl if k.startswith(_BOOKKEEPING)]:
            del trl[key]
    changed = sorted(_diff(before, now))
    if changed:
        raise RecipeError(f"resume: {out_dir} holds a run of another recipe (differs in "
                          f"{', '.join(changed[:5])}); resume with the same recipe or start a "
                          f"new --out")


_BOOKKEEPING = ("resume_from_checkpoint", "save_", "logging_", "eval_", "report_to",
                "disable_tqdm", "dataloader_")


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in set(a) | set(b) for d in _diff(a.get(k), b.get(k), f"{prefix}{k}.")]
    return [] if a == b else [prefix.rstrip(".")]


def verify_shards(path: Path, world_size: int) -> None:
    """
    A DeepSpeed run resumes from its own per-rank shards (`global_step<N>/`, named by the
    `latest` file), not from the gathered weights: every rank's model and optimizer
    shard must be there, for this job's world size (ZeRO cannot re-partition them).
    """
    hint = f"delete {path} and resume from the previous checkpoint"
    try:
        tag = (path / "latest").read_text(encoding="utf-8").strip()
    except OSError:
        raise RecipeError(f"resume: {path} holds no DeepSpeed shards (no 'latest' file) but "
                          f"the recipe trains with DeepSpeed; it was written by a run "
                          f"without DeepSpeed — start a new --out") from None
    shards = path / tag
    ranks = sorted(shards.glob("*zero_pp_rank_*_mp_rank_00_model_states.pt"))
    if len(ranks) != world_size:
        raise RecipeError(f"resume: {shards} holds {len(ranks)} ZeRO model shard(s), this job "
                          f"runs {world_size} rank(s); ZeRO resumes only at the same world size")
    for rank in range(world_size):
        optim = list(shards.glob(f"*zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"))
        if not optim or not zipfile.is_zipfile(optim[0]):
            raise RecipeError(f"resume: {shards} lacks rank {rank}'s optimizer shard or it is "
                              f"corrupt; {hint}")



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
