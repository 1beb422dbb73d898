"""Build medgo-tiny, the embedded model, through the real pipeline stages.

    tokenizer (BPE on the corpus) -> fresh Qwen2 init -> pretrain -> LoRA SFT

Output under `<model_dir>/medgo-tiny/`: `base/` (a Hugging Face model directory with
tokenizer, ChatML template and generation config), `adapters/sft/` (a PEFT LoRA adapter
that vLLM serves as `medgo-tiny-sft`) and `build.json` (seed, inputs hash, held-out
perplexities, timings). It also writes `<model_dir>/serving.json` if none exists yet.

The build is deterministic for a seed and cached: the inputs hash covers the corpus
files, the two packaged recipes, the seed and `BUILD_VERSION`; with the same inputs a
second build returns at once. It is sized for about five minutes on 2 CPU cores, since
CI builds it on every fresh machine before the tests.

    medgo-train build-tiny            # no-op when up to date
    medgo-train build-tiny --force    # rebuild
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_trainer.data.corpus import Dialogue, dialogue_text, read_dialogues, source_files
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.recipe import RECIPES_DIR, load_recipe

log = logging.getLogger(__name__)

#: Bump when the build changes in a way the inputs hash cannot see.
BUILD_VERSION = "1"
ADAPTER_NAME = "medgo-tiny-sft"
HELD_OUT_DIALOGUES = 300
VOCAB_SIZE = 8192
RECIPES = ("medgo-tiny-pretrain.yaml", "medgo-tiny-sft.yaml")


@dataclass(frozen=True)
class TinyPaths:
    """Where medgo-tiny lives inside `model_dir`."""

    root: Path

    @property
    def base(self) -> Path:
        return self.root / "base"

    @property
    def adapter(self) -> Path:
        return self.root / "adapters" / "sft"

    @property
    def build_info(self) -> Path:
        return self.root / "build.json"


def inputs_hash(settings: TrainerSettings, seed: int) -> str:
    """Everything the build depends on; equal hashes mean the cached model is current."""
    digest = hashlib.sha256(f"medgo-tiny v{BUILD_VERSION} seed={seed}".encode())
    for path in [*source_files(settings.data_dir), *(RECIPES_DIR / r for r in RECIPES)]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def is_up_to_date(paths: TinyPaths, expected_hash: str) -> bool:
    try:
        info = json.loads(paths.build_info.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (info.get("inputs_hash") == expected_hash
            and (paths.base / "config.json").is_file()
            and (paths.adapter / "adapter_config.json").is_file())


def build_tiny(settings: TrainerSettings, *, seed: int, force: bool = False,
               progress: bool = True) -> dict[str, Any]:
    """Build medgo-tiny unless an identical build is cached; returns its build info."""
    paths = TinyPaths(settings.model_dir / "medgo-tiny")
    expected = inputs_hash(settings, seed)
    if not force and is_up_to_date(paths, expected):
        return {"up_to_date": True, **json.loads(paths.build_info.read_text(encoding="utf-8"))}
    # Build beside the live copy and swap at the end: colleagues' servers keep reading the
    # previous model until the new one is complete.
    staging = TinyPaths(settings.model_dir / ".medgo-tiny.build")
    shutil.rmtree(staging.root, ignore_errors=True)
    info = _build(settings, staging, seed=seed, progress=progress)
    info["inputs_hash"] = expected
    staging.build_info.write_text(json.dumps(info, indent=2, ensure_ascii=False))
    _swap_into_place(staging, paths)
    _write_manifest_if_missing(settings.serving_manifest, paths)
    return {"up_to_date": False, **info}


def _build(settings: TrainerSettings, paths: TinyPaths, *, seed: int,
           progress: bool) -> dict[str, Any]:
    from medgo_trainer.training.stages import pretrain, sft
    from medgo_trainer.training.tokenizer import compression_ratio, save_tokenizer, train_tokenizer

    timings: dict[str, float] = {}
    started = time.perf_counter()
    data_dir = paths.root / "data"
    train, held_out = _split(list(read_dialogues(settings.data_dir)), seed)
    files = _write_datasets(data_dir, train, held_out)

    log.info("medgo-tiny 1/3: tokenizer (byte-level BPE, %d entries)", VOCAB_SIZE)
    tokenizer = train_tokenizer((dialogue_text(d) for d in train), VOCAB_SIZE)
    save_tokenizer(tokenizer, paths.base)
    ratio = compression_ratio(tokenizer, (dialogue_text(d) for d in held_out))
    timings["tokenizer_s"] = time.perf_counter() - started

    log.info("medgo-tiny 2/3: pre-training a fresh Qwen2 on %d documents", len(train))
    recipe = load_recipe(RECIPES_DIR / RECIPES[0], [
        f"base={paths.base}", f"seed={seed}",
        f"data.train=[{files['pretrain-train']}]", f"data.eval=[{files['pretrain-eval']}]",
    ])
    pre = pretrain.run(recipe, paths.base, progress=progress)
    _write_generation_config(paths.base, tokenizer)
    timings["pretrain_s"] = pre.metrics["train_seconds"]

    log.info("medgo-tiny 3/3: LoRA SFT on %d dialogues", len(train))
    recipe = load_recipe(RECIPES_DIR / RECIPES[1], [
        f"base={paths.base}", f"seed={seed}",
        f"data.train=[{files['sft-train']}]", f"data.eval=[{files['sft-eval']}]",
    ])
    tuned = sft.run(recipe, paths.adapter, progress=progress)
    timings["sft_s"] = tuned.metrics["train_seconds"]
    timings["total_s"] = time.perf_counter() - started
    shutil.rmtree(data_dir)  # derived from the corpus; the hash is what lineage needs
    return {
        "seed": seed,
        "tokenizer": {"vocab_size": len(tokenizer), "chars_per_token_held_out": ratio},
        "held_out_perplexity": {
            "random_init": pre.metrics["initial_eval_perplexity"],
            "after_pretrain": pre.metrics["eval_perplexity"],
            "chat_before_sft": tuned.metrics["initial_eval_perplexity"],
            "chat_after_sft": tuned.metrics["eval_perplexity"],
        },
        "tokens_per_second": {"pretrain": pre.metrics.get("tokens_per_second"),
                              "sft": tuned.metrics.get("tokens_per_second")},
        "data_hash": {"pretrain": pre.data_hash, "sft": tuned.data_hash},
        "timings": timings,
    }


def _split(dialogues: list[Dialogue], seed: int) -> tuple[list[Dialogue], list[Dialogue]]:
    """A seeded shuffle, then a fixed held-out slice never seen by tokenizer or training."""
    random.Random(seed).shuffle(dialogues)
    return dialogues[HELD_OUT_DIALOGUES:], dialogues[:HELD_OUT_DIALOGUES]


def _write_datasets(out: Path, train: list[Dialogue], held_out: list[Dialogue]) -> dict[str, Path]:
    """The corpus in TRL's row formats: `text` for pretrain, `messages` for SFT."""
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for split, dialogues in (("train", train), ("eval", held_out)):
        for stage, row in (("pretrain", lambda d: {"text": dialogue_text(d)}),
                           ("sft", lambda d: {"messages": d})):
            path = files[f"{stage}-{split}"] = out / f"{stage}-{split}.jsonl"
            with path.open("w", encoding="utf-8") as fh:
                fh.writelines(json.dumps(row(d), ensure_ascii=False) + "\n" for d in dialogues)
    return files


def _write_generation_config(base: Path, tokenizer: Any) -> None:
    """Stop at the end of a chat turn or of a document, as Qwen2-Instruct does."""
    from transformers import GenerationConfig

    GenerationConfig(
        eos_token_id=[tokenizer.convert_tokens_to_ids(t) for t in ("<|im_end|>", "<|endoftext|>")],
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.pad_token_id,
        do_sample=True, temperature=0.7, top_p=0.8, repetition_penalty=1.05,
    ).save_pretrained(base)


def _swap_into_place(staging: TinyPaths, final: TinyPaths) -> None:
    adapter_config = staging.adapter / "adapter_config.json"
    config = json.loads(adapter_config.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = str(final.base.resolve())
    adapter_config.write_text(json.dumps(config, indent=2))
    old = final.root.with_name(".medgo-tiny.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.root.exists():
        final.root.rename(old)
    staging.root.rename(final.root)
    shutil.rmtree(old, ignore_errors=True)


def _write_manifest_if_missing(manifest: Path, paths: TinyPaths) -> None:
    """Serve medgo-tiny by default, but never overwrite a checkpoint someone promoted."""
    if manifest.exists():
        return
    ServingManifest(
        checkpoint_id=ADAPTER_NAME,
        base_model=str(paths.base.resolve()),
        adapters=[AdapterRef(name=ADAPTER_NAME, path=str(paths.adapter.resolve()))],
    ).save(manifest)
