"""Training recipes: one YAML file per run, validated before any compute is spent.

A recipe names the stage, where it starts from, what data it reads, and two verbatim
blocks owned by the libraries we train with: `lora` holds `peft.LoraConfig` keyword
arguments and `trl` holds the keyword arguments of the stage's TRL config class
(`SFTConfig` for pretrain and sft, `DPOConfig`, `KTOConfig`). Because the loader
constructs those classes, TRL's and PEFT's documentation *is* our documentation and a
misspelt key fails at load time, not an hour into a run (TRL's `TrlParser` idea).

Overrides follow TRL/nanoGPT: the file first, then `--set trl.learning_rate=1e-5`.
The resolved recipe is written next to every checkpoint (`recipe.resolved.yaml`).
"""

from __future__ import annotations

import dataclasses
import difflib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from medgo_trainer.configfile import (
    ConfigError,
    apply_override,
    load_yaml,
    resolve_packaged,
    yaml_error_where,
)

Stage = Literal["pretrain", "sft", "dpo", "kto"]
STAGES: tuple[str, ...] = get_args(Stage)

#: The fields each stage's JSONL rows must carry, in TRL's own names.
REQUIRED_FIELDS: dict[str, frozenset[str]] = {
    "pretrain": frozenset({"text"}),
    "sft": frozenset({"messages"}),
    "dpo": frozenset({"prompt", "chosen", "rejected"}),
    "kto": frozenset({"prompt", "completion", "label"}),
}

#: TRL config fields that need an accelerator, and their CPU values for a dry run.
_GPU_ONLY_FIELDS = {"bf16": False, "fp16": False, "tf32": None, "deepspeed": None}


class RecipeError(ConfigError):
    """A recipe that cannot run; the message says which key and what would be valid."""


@dataclass
class DataSpec:
    """
    The data a stage trains and evaluates on: JSONL files whose rows use TRL's field
    names (see `REQUIRED_FIELDS`), so feedback exports and `prepare` shards feed in as-is.

    Parameters:
        train (`list[str]`):
            JSONL files to train on.
        eval (`list[str]`, *optional*, defaults to `[]`):
            Held-out JSONL files; their loss (and perplexity) is reported after training.
        max_train_samples (`int` or `None`, *optional*, defaults to `None`):
            Keep only the first N training rows (after reading in file order): for smoke
            runs and the CPU-sized medgo-tiny build.
        tokenized_cache (`str` or `None`, *optional*, defaults to `None`):
            pretrain and sft: a directory shared by every node where rank 0 tokenises
            the data once, with `trl.dataset_num_proc` processes, and every rank and
            later run with the same data, tokenizer and keys reads it
            (`stages/tokenized.py`). `None`: TRL tokenises in each run, on every rank.
    """

    train: list[str] = field(default_factory=list)
    eval: list[str] = field(default_factory=list)
    max_train_samples: int | None = None
    tokenized_cache: str | None = None


@dataclass
class Recipe:
    """
    One training run of one stage.

    Parameters:
        > Parameters that control the model

        stage (`str`):
            `pretrain` (causal-LM training with packing), `sft` (supervised fine-tuning on
            chat `messages`), `dpo` (preference pairs) or `kto` (unpaired ratings).
        base (`str`):
            Model directory or hub id to start from. With `model` set, only its tokenizer
            is used and the weights are freshly initialised (medgo-tiny's pre-training).
        adapter (`str` or `None`, *optional*, defaults to `None`):
            PEFT adapter merged into `base` before training. DPO and KTO require it: TRL's
            `ref_model=None` means "the initial policy is the reference", so the SFT adapter
            must be part of that initial policy (DPO paper, section 4).
        reference (`str` or `None`, *optional*, defaults to `None`):
            `base` + `adapter` already merged by `medgo-train export` (dpo and kto): the
            model the stage loads as its starting policy and reference. Required under
            DeepSpeed ZeRO-3, where the loaded weights are partitioned placeholders that
            PEFT's merge cannot read; its `export.json` must name this `base` and `adapter`.
        model (`dict` or `None`, *optional*, defaults to `None`):
            `transformers.Qwen2Config` keyword arguments for a from-scratch initialisation;
            `pretrain` only. Vocabulary size and special-token ids come from the tokenizer.
        lora (`dict` or `None`, *optional*, defaults to `None`):
            `peft.LoraConfig` keyword arguments; `None` trains all weights.

        > Parameters that control the data and the training

        data (`DataSpec`):
            Training and held-out files, see `DataSpec`.
        trl (`dict`):
            Keyword arguments passed verbatim to the stage's TRL config class.
        seed (`int`, *optional*, defaults to `42`):
            Seeds weight initialisation, LoRA initialisation, data order and dropout;
            copied into `trl.seed` / `trl.data_seed` unless those are given.

        > Parameters that control serving (dpo and kto only)

        max_serving_rank (`int` or `None`, *optional*, defaults to `None`):
            Largest LoRA rank of the adapter served after this run (`<out>/serving/`, the
            previous adapter and the new delta combined). The exact concatenation has the
            sum of their ranks, which grows every round of the feedback loop; above this
            cap it is compressed to this rank by SVD (`stages.preference`). One of the
            ranks vLLM accepts (`LORA_RANKS`), and at most the inference service's
            `max_lora_rank`. `None` always keeps the exact concatenation.
    """

    stage: Stage
    base: str
    data: DataSpec = field(default_factory=DataSpec)
    adapter: str | None = None
    reference: str | None = None
    model: dict[str, Any] | None = None
    lora: dict[str, Any] | None = None
    trl: dict[str, Any] = field(default_factory=dict)
    seed: int = 42
    max_serving_rank: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, path: Path) -> Path:
        """Write the resolved recipe (nanoGPT keeps its config in every checkpoint)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), allow_unicode=True, sort_keys=False))
        return path


def trl_config_class(stage: str) -> type:
    """The TRL config dataclass a stage's `trl:` block is passed to."""
    import trl

    return {"pretrain": trl.SFTConfig, "sft": trl.SFTConfig, "dpo": trl.DPOConfig,
            "kto": trl.KTOConfig}[stage]


def build_trl_config(recipe: Recipe, output_dir: Path | str, *, dry_run: bool = False) -> Any:
    """
    Construct the stage's TRL config from `recipe.trl`.

    With `dry_run=True` on a machine without CUDA, the accelerator-only fields (bf16,
    deepspeed, ...) are checked statically and left out of the construction, so a 72B
    recipe validates on a laptop without touching a GPU or initialising DeepSpeed.
    Stages call it with `dry_run=False`: there every field is in force.
    """
    cls = trl_config_class(recipe.stage)
    kwargs = {"seed": recipe.seed, "data_seed": recipe.seed, **recipe.trl}
    _check_keys("trl", kwargs, {f.name for f in dataclasses.fields(cls) if f.init}, cls.__name__)
    if dry_run and not _cuda_available():
        kwargs.update(_GPU_ONLY_FIELDS)
    try:
        return cls(output_dir=str(output_dir), **kwargs)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"trl: {cls.__name__} rejected the recipe: {exc}") from exc


def build_lora_config(recipe: Recipe) -> Any:
    """Construct `peft.LoraConfig(**recipe.lora)` (causal-LM task), or `None`."""
    if recipe.lora is None:
        return None
    import peft

    kwargs = {"task_type": "CAUSAL_LM", **recipe.lora}
    valid = {f.name for f in dataclasses.fields(peft.LoraConfig) if f.init}
    _check_keys("lora", kwargs, valid, "peft.LoraConfig")
    rank = kwargs.get("r", 8)
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 1:
        raise RecipeError(f"lora.r: the LoRA rank must be a positive integer, got {rank!r}")
    try:
        return peft.LoraConfig(**kwargs)
    except (ValueError, TypeError) as exc:
        raise RecipeError(f"lora: peft.LoraConfig rejected the recipe: {exc}") from exc


def load_recipe(
    path: Path | str, overrides: list[str] | tuple[str, ...] = (), *, check_data: bool = True,
    screen: Callable[[dict[str, Any], Path], None] | None = None,
) -> Recipe:
    """
    Load a YAML recipe, apply `key.sub=value` overrides, and validate it fully.

    Raises `RecipeError` for unknown keys (naming the valid ones), malformed overrides,
    values the TRL/PEFT config classes reject, and impossible combinations.
    `check_data=False` skips opening the data files, for recipes rendered here but run
    where their data lives (a cluster volume). `screen(raw, path)` sees the plain
    recipe, overrides applied, before anything it names is opened: the job API's
    policy (`api/policy.py`) refuses paths and keys there.
    """
    path = Path(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise RecipeError(f"cannot read recipe {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise RecipeError(f"recipe {path} is not valid YAML ({yaml_error_where(exc)})") from None
    if not isinstance(raw, dict):
        raise RecipeError(f"recipe {path} must be a mapping of keys to values")
    for item in overrides:
        apply_override(raw, item, RecipeError)
    if screen is not None:
        screen(raw, path)
    recipe = recipe_from_dict(raw)
    ds = recipe.trl.get("deepspeed")
    if isinstance(ds, str) and not Path(ds).is_absolute():
        # Packaged recipes name their DeepSpeed JSON relative to the recipe file.
        recipe.trl["deepspeed"] = str((path.parent / ds).resolve())
    validate(recipe, check_data=check_data)
    return recipe


def recipe_from_dict(raw: dict[str, Any]) -> Recipe:
    """Build a `Recipe` from plain data, rejecting unknown keys by name."""
    _check_keys("recipe", raw, {f.name for f in dataclasses.fields(Recipe)}, "Recipe")
    data = raw.get("data") or {}
    if not isinstance(data, dict):
        raise RecipeError("data: must be a mapping with train/eval/max_train_samples/"
                          "tokenized_cache")
    _check_keys("data", data, {f.name for f in dataclasses.fields(DataSpec)}, "DataSpec")
    for key in ("train", "eval"):
        if isinstance(data.get(key), str):
            data[key] = [data[key]]
    for key in ("stage", "base"):
        if key not in raw:
            raise RecipeError(f"recipe: missing required key {key!r}")
    if raw["stage"] not in STAGES:
        raise RecipeError(f"stage: {raw['stage']!r} is not one of {', '.join(STAGES)}")
    for key in ("trl", "lora", "model"):
        if raw.get(key) is not None and not isinstance(raw[key], dict):
            raise RecipeError(f"{key}: must be a mapping of keyword arguments")
    return Recipe(**{**raw, "data": DataSpec(**data), "trl": dict(raw.get("trl") or {})})


def validate(recipe: Recipe, *, check_data: bool = True) -> None:
    """Cross-field rules, then the real TRL and PEFT config constructions."""
    trl = recipe.trl
    # TRL turns bf16 on unless told otherwise, so on CPU it must be switched off explicitly.
    if trl.get("use_cpu") and (trl.get("bf16") is not False or trl.get("fp16")):
        raise RecipeError(
            "trl: bf16/fp16 with use_cpu is not supported: CPU training here runs in float32 "
            "(set bf16: false - TRL's default is true - or drop use_cpu on a GPU machine)"
        )
    if trl.get("use_cpu") and trl.get("deepspeed"):
        raise RecipeError("trl: use_cpu with deepspeed: drop use_cpu, the stage picks DeepSpeed's "
                          "CPU accelerator itself on a machine without CUDA")
    if recipe.model is not None and recipe.stage != "pretrain":
        raise RecipeError(f"model: from-scratch initialisation is for stage pretrain, not "
                          f"{recipe.stage}")
    if recipe.stage in ("dpo", "kto") and not recipe.adapter:
        raise RecipeError(
            f"adapter: stage {recipe.stage} needs the SFT adapter as its reference policy "
            "(set adapter: <path to the SFT adapter>)"
        )
    _check_serving_rank(recipe)
    if not recipe.data.train:
        raise RecipeError("data.train: at least one training file is required")
    if recipe.data.max_train_samples is not None and recipe.data.max_train_samples < 1:
        raise RecipeError("data.max_train_samples: must be a positive integer")
    if not isinstance(recipe.data.tokenized_cache, str | None):
        raise RecipeError("data.tokenized_cache: must be a directory path")
    if recipe.data.tokenized_cache is not None and recipe.stage not in ("pretrain", "sft"):
        raise RecipeError(f"data.tokenized_cache: only pretrain and sft tokenise through the "
                          f"cache, not {recipe.stage}")
    args = build_trl_config(recipe, "unused-dry-run", dry_run=True)
    try:
        _check_start(recipe)
        if trl.get("deepspeed"):
            from medgo_trainer.training.deepspeed_config import check_deepspeed, load_deepspeed

            check_deepspeed(load_deepspeed(trl["deepspeed"]), args, trl, str(trl["deepspeed"]))
    except ConfigError as exc:  # the export's and DeepSpeed checks' own errors
        raise RecipeError(str(exc)) from exc
    build_lora_config(recipe)
    for data_file in (recipe.data.train + recipe.data.eval) if check_data else ():
        check_data_file(Path(data_file), recipe.stage)


def _check_start(recipe: Recipe) -> None:
    """
    What the stage starts from must be loadable where it trains: a model directory (a
    LoRA stage's output is not one until exported), and under ZeRO-3 an SFT policy merged
    beforehand, since merging inside the partitioned process fails.
    """
    from medgo_trainer.training.export import require_model

    if recipe.model is None:
        require_model(Path(recipe.base), "base")
    if recipe.reference is not None:
        if recipe.stage not in ("dpo", "kto") or not recipe.adapter:
            raise RecipeError("reference: only dpo and kto start from an exported SFT policy, "
                              "and then adapter must name the SFT adapter it was merged from")
        require_model(Path(recipe.reference), "reference")
    elif recipe.adapter and _zero_stage(recipe) == 3:
        raise RecipeError(
            f"reference: under DeepSpeed ZeRO-3 the SFT adapter cannot be merged into the "
            f"partitioned base; export the merged policy first (medgo-train export --base "
            f"{recipe.base} --adapter {recipe.adapter} --out <dir>) and set reference: <dir>")


def _zero_stage(recipe: Recipe) -> int:
    from medgo_trainer.training.deepspeed_config import load_deepspeed, zero_stage

    ds = recipe.trl.get("deepspeed")
    return zero_stage(load_deepspeed(ds)) if ds else 0


def _check_serving_rank(recipe: Recipe) -> None:
    """A cap vLLM could not be configured with would only fail at serving time."""
    from medgo_common.schemas.serving import LORA_RANKS

    cap = recipe.max_serving_rank
    if cap is None:
        return
    if recipe.stage not in ("dpo", "kto"):
        raise RecipeError(f"max_serving_rank: only dpo and kto compose a serving adapter, "
                          f"not stage {recipe.stage}")
    if isinstance(cap, bool) or cap not in LORA_RANKS:
        raise RecipeError(f"max_serving_rank: {cap!r} is not a rank vLLM accepts "
                          f"({', '.join(map(str, LORA_RANKS))})")


def check_data_file(path: Path, stage: str) -> None:
    """
    Fail before compute on a data file that is missing, empty, or lacks the stage's
    fields: only the first row is parsed, so this stays cheap on a large shard.
    (A file that does not exist yet is an error too: recipes name existing inputs.)
    """
    try:
        with path.open(encoding="utf-8") as fh:
            first = fh.readline()
    except OSError as exc:
        raise RecipeError(f"data: cannot read {path}: {exc.strerror}") from exc
    if not first.strip():
        raise RecipeError(f"data: {path} is empty")
    try:
        row = json.loads(first)
    except ValueError as exc:
        raise RecipeError(f"data: {path} line 1 is not JSON: {exc}") from exc
    missing = REQUIRED_FIELDS[stage] - set(row if isinstance(row, dict) else ())
    if missing:
        raise RecipeError(
            f"data: {path} rows lack {sorted(missing)} needed by stage {stage} "
            f"(rows need {sorted(REQUIRED_FIELDS[stage])})"
        )


def _check_keys(where: str, given: dict[str, Any], valid: set[str], owner: str) -> None:
    unknown = sorted(set(given) - valid)
    if not unknown:
        return
    close = difflib.get_close_matches(unknown[0], valid, n=3)
    if len(valid) <= 20:
        hint = f"valid keys: {', '.join(sorted(valid))}"
    else:  # TRL configs have ~150 fields: point at the likely ones and the docs.
        hint = (f"did you mean {' or '.join(close)}? " if close else "") + (
            f"valid keys are the {owner} fields (see its documentation)")
    raise RecipeError(f"{where}: unknown key {unknown[0]!r} (not a field of {owner}); {hint}")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


#: The recipes shipped with the package (medgo-tiny-*, medgo-72b-*).
RECIPES_DIR = Path(__file__).parent / "recipes"


def resolve_recipe_path(name: str | Path) -> Path:
    """A recipe file path as given, or a packaged recipe by name (`medgo-72b-sft`)."""
    return resolve_packaged(name, RECIPES_DIR, "recipe", RecipeError)
