"""What a caller of the job API may ask for: least privilege for an API that runs code.

A job runs `medgo-train` on this machine with the caller's recipe and overrides, so the
API accepts much less than the CLI an operator types:

- **recipe**: a *name*, looked up in `MEDGO_TRAINER_RECIPES_DIR` (when set) and then
  among the packaged recipes (or mixtures, for `build-sft`); never a path. The child
  process is handed the file found here, so what was checked is what runs.
- **overrides**: only the keys of `TRAINING_OVERRIDES` / `MIXTURE_OVERRIDES` (sizes,
  steps, learning rate, data and model paths, ...). Everything else — notably
  `trl.model_init_kwargs`, `trl.deepspeed`, source `options` — belongs to the recipe's
  author, who put the file in a recipes directory.
- **paths**: every path the recipe names, overrides applied, must resolve (symlinks
  followed) under the data, model or job directory; a DeepSpeed config may also sit
  beside its recipe. A path with a `..` part is refused as written.
- **trust_remote_code**: nowhere in the recipe, at any depth (`trl.model_init_kwargs`,
  `model`, ...): with a planted model directory it is arbitrary code.

Each refusal is a 422 in the project's error shape naming the field (`recipe` or
`overrides`), raised before any job row, directory or process exists. Messages name
keys and the caller's own values, never the contents of a file.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgo_common.errors import MedgoError

from medgo_trainer.data.sft.mixture import MIXTURES_DIR
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.recipe import RECIPES_DIR
from medgo_trainer.training.stages.resume import AUTO, LAST

#: Training-recipe keys a caller may override: what a run is sized, stepped, fed and
#: started from. `*` never appears: each key is meant.
TRAINING_OVERRIDES = frozenset({
    "base", "adapter", "reference", "seed", "max_serving_rank",
    "data.train", "data.eval", "data.max_train_samples",
    "model.hidden_size", "model.intermediate_size", "model.num_hidden_layers",
    "model.num_attention_heads", "model.num_key_value_heads", "model.max_position_embeddings",
    "lora.r", "lora.lora_alpha", "lora.lora_dropout",
    "trl.learning_rate", "trl.lr_scheduler_type", "trl.warmup_steps", "trl.warmup_ratio",
    "trl.weight_decay", "trl.max_grad_norm", "trl.max_steps", "trl.num_train_epochs",
    "trl.per_device_train_batch_size", "trl.per_device_eval_batch_size",
    "trl.gradient_accumulation_steps", "trl.max_length", "trl.beta",
    "trl.logging_steps", "trl.save_steps", "trl.eval_steps", "trl.save_total_limit",
    "trl.resume_from_checkpoint",
})
#: SFT-mixture keys a caller may override (`<name>` = any source's name).
MIXTURE_OVERRIDES = frozenset({
    "seed", "leakage.ngram", "leakage.threshold", "leakage.min_chars", "leakage.template_df",
    "sources.<name>.weight", "sources.<name>.max_examples",
})
#: Recipe keys holding a path (a string, or a list of them for the data files).
_PATH_KEYS = ("base", "adapter", "reference", "data.train", "data.eval",
              "trl.resume_from_checkpoint", "trl.logging_dir")
_RESUME_WORDS = frozenset({LAST, AUTO})  # checkpoints in the job's own output directory
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def _refuse(param: str, message: str, code: str = "recipe_not_allowed") -> MedgoError:
    return MedgoError(422, message, code=code, param=param)


def _allowed(key: str, allowlist: Collection[str]) -> bool:
    """Whether `key` matches an allowlist entry (`<name>` matches one whole segment)."""
    parts = key.split(".")
    for pattern in allowlist:
        wants = pattern.split(".")
        if len(wants) == len(parts) and all(
                want in ("<name>", got) for want, got in zip(wants, parts, strict=True)):
            return True
    return False


@dataclass(frozen=True)
class JobPolicy:
    """The policy of one job API, from its settings (`JobPolicy.from_settings`)."""

    data_dir: Path
    roots: tuple[Path, ...]  # data, model and job directories, resolved
    recipes_dir: Path | None

    @classmethod
    def from_settings(cls, settings: TrainerSettings) -> JobPolicy:
        roots = (settings.data_dir, settings.model_dir, settings.jobs_dir)
        return cls(settings.data_dir, tuple(root.resolve() for root in roots),
                   settings.recipes_dir)

    def find_recipe(self, name: str, stage: str) -> Path:
        """The recipe file of `name` for `stage`: the recipes directory first, then the
        packaged ones. A path, a symlink leading out of its directory or an unknown name
        is refused (422 `recipe`)."""
        if not _NAME.match(name) or ".." in name:
            raise _refuse("recipe", f"recipe {name!r} must be the name of a packaged recipe "
                          "or of one in MEDGO_TRAINER_RECIPES_DIR (letters, digits, . _ -), "
                          "not a path")
        packaged = MIXTURES_DIR if stage == "build-sft" else RECIPES_DIR
        directories = [d for d in (self.recipes_dir, packaged) if d is not None]
        for directory in directories:
            candidate = directory / f"{name.removesuffix('.yaml')}.yaml"
            if candidate.is_file():
                if not candidate.resolve().is_relative_to(directory.resolve()):
                    raise _refuse("recipe", f"recipe {name!r} links outside its directory")
                return candidate.resolve()
        what = "mixture" if stage == "build-sft" else "recipe"
        known = sorted({p.stem for d in directories for p in d.glob("*.yaml")})
        raise _refuse("recipe", f"no {what} named {name!r} for stage {stage}; known: "
                      f"{', '.join(known)}", code="invalid_recipe")

    def check_overrides(self, stage: str, overrides: Iterable[str]) -> None:
        """Every override's key is on the stage's allowlist (422 `overrides` otherwise)."""
        allowlist = MIXTURE_OVERRIDES if stage == "build-sft" else TRAINING_OVERRIDES
        for key in sorted(override_keys(overrides)):
            if not _allowed(key, allowlist):
                raise _refuse("overrides", f"override key {key!r} is not allowed through "
                              f"the job API; allowed: {', '.join(sorted(allowlist))}")

    def screen_training(self, raw: dict[str, Any], path: Path, overridden: set[str]) -> None:
        """The training recipe `raw` (overrides applied, nothing opened yet) names no
        `trust_remote_code` and only paths under the allowed roots."""
        for where in _trust_remote_code(raw, ""):
            raise _refuse("recipe", f"{where}: trust_remote_code is refused by the job API "
                          "(remote code from a model directory would run here)")
        for key in _PATH_KEYS:
            param = "overrides" if key in overridden else "recipe"
            for value in _values(raw, key):
                if not (key == "trl.resume_from_checkpoint" and value in _RESUME_WORDS):
                    self.confine(value, key, param)
        deepspeed = (raw.get("trl") or {}).get("deepspeed")
        if isinstance(deepspeed, str):  # relative to the recipe, as load_recipe reads it
            self.confine(str(path.parent / deepspeed), "trl.deepspeed", "recipe",
                         extra=(path.parent.resolve(),))

    def confine(self, value: str, key: str, param: str, *, extra: tuple[Path, ...] = ()) -> None:
        """Refuse `value` unless, resolved (symlinks followed), it lies under a root."""
        if ".." in Path(value).parts:
            raise _refuse(param, f"{key}: {value!r} has a '..' part; name the path from "
                          "the data, model or job directory down", code="path_not_allowed")
        resolved = Path(value).resolve()
        if not any(resolved.is_relative_to(root) for root in (*self.roots, *extra)):
            raise _refuse(param, f"{key}: {value!r} is outside the data, model and job "
                          f"directories ({', '.join(map(str, self.roots))})",
                          code="path_not_allowed")

    def confine_sources(self, files: dict[str, list[Path]]) -> None:
        """A mixture's source files (from `validate_sources`) lie under the roots too."""
        for source, paths in files.items():
            for path in paths:
                self.confine(str(path), f"sources.{source}", "recipe")


def override_keys(overrides: Iterable[str]) -> set[str]:
    """The keys the overrides set (`data.train=[...]` → `data.train`)."""
    return {item.partition("=")[0].strip() for item in overrides}


def _values(raw: dict[str, Any], key: str) -> Iterator[str]:
    """The string(s) at dotted `key` of `raw` (a list's strings for the data files)."""
    node: Any = raw
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    for value in node if isinstance(node, list) else [node]:
        if isinstance(value, str):
            yield value


def _trust_remote_code(node: Any, where: str) -> Iterator[str]:
    """Where `trust_remote_code` is set to anything but false, at any depth."""
    if isinstance(node, dict):
        items: Iterable[tuple[Any, Any]] = node.items()
    else:
        items = enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        here = f"{where}.{key}" if where else str(key)
        if key == "trust_remote_code" and value is not False:
            yield here
        yield from _trust_remote_code(value, here)
