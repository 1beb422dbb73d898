"""Tokenise a corpus once, in parallel, into a cache every rank of every later run reads.

Why not TRL's own: `SFTTrainer` tokenises inside its constructor, on every rank, the main
process first behind a collective barrier (`global_then_local_main_first`). That barrier
fails after the process group's timeout (`ddp_timeout`, 30 minutes) while rank 0 is still
tokenising, and 14 B tokens take hours; a restarted job tokenises again.

With `data.tokenized_cache: DIR` (pretrain and sft), the stage does TRL's tokenise step
itself, before the trainer exists:

* **Key.** `DIR/<key>`, the key a hash of what the tokens depend on (`cache_fields`):
  the data snapshot hash (the train and held-out files' content), the tokenizer (its
  serialised vocabulary and rules, chat template, EOS), the recipe keys that change the
  token ids (`stage`, `data.max_train_samples`, `trl.dataset_text_field`,
  `trl.assistant_only_loss`), TRL's version and this cache's `FORMAT`. `max_length` and
  packing are not in it: TRL applies them to the cached ids on every run (cheap, see
  below), so changing them reuses the cache. Only rank 0 reads the corpus to hash it;
  the key reaches the other ranks by one broadcast.
* **Rank 0** tokenises with `trl.dataset_num_proc` processes into
  `DIR/<key>.partial-<host>-<pid>`, writes the `COMPLETE` marker last, and renames the
  directory to `DIR/<key>` (atomic on one file system; if another job got there first,
  its copy is kept and this one deleted).
* **Every other rank** polls for `DIR/<key>/COMPLETE` (every `POLL_SECONDS`, logging
  once a minute, without a timeout: no collective is pending while it waits; if rank 0
  dies, torchrun stops the job) and then memory-maps the same Arrow files.

The cached rows carry TRL's tokenised columns (`input_ids`, and `assistant_masks` with
assistant-only loss), so `SFTTrainer` skips its tokenisation and only builds labels,
truncates and packs — Arrow-speed steps, also with `dataset_num_proc`, whose results
`datasets` caches beside the cached files. DIR must be shared by every node (the
checkpoint volume on Kubernetes; the data volume is mounted read-only in training pods).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from medgo_trainer.training.recipe import Recipe, RecipeError

log = logging.getLogger(__name__)

#: Written last into a finished cache directory; its presence is the "done" signal.
COMPLETE = "COMPLETE"
#: The cached columns' layout; bump it when they change, so old caches are not read.
FORMAT = 1
POLL_SECONDS = 5.0
_SPLITS = ("train", "eval")


def cache_fields(recipe: Recipe, args: Any, tokenizer: Any, data_hash: str) -> dict[str, Any]:
    """Everything the cached token ids depend on (the key is its hash; saved as key.json)."""
    import trl

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise RecipeError("data.tokenized_cache: needs a fast (Rust) tokenizer, whose rules "
                          f"can be hashed; {type(tokenizer).__name__} is not one")
    return {
        "format": FORMAT,
        "trl": trl.__version__,
        "data": data_hash,
        "tokenizer": hashlib.sha256(backend.to_str().encode()).hexdigest(),
        "chat_template": tokenizer.chat_template,
        "eos_token": tokenizer.eos_token,
        "stage": recipe.stage,
        "max_train_samples": recipe.data.max_train_samples,
        "dataset_text_field": args.dataset_text_field,
        "assistant_only_loss": bool(getattr(args, "assistant_only_loss", False)),
    }


def cache_key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:32]


def _tokenize_text(batch: dict[str, list], tokenizer: Any, field: str) -> dict[str, list]:
    """TRL's language-modelling rows: EOS appended unless present, then the ids."""
    eos = tokenizer.eos_token
    texts = [text if text.endswith(eos) else text + eos for text in batch[field]]
    return {"input_ids": tokenizer(texts)["input_ids"]}


def _tokenize_chat(row: dict[str, Any], tokenizer: Any, assistant_only_loss: bool
                   ) -> dict[str, list]:
    """TRL's conversational rows: the chat template's ids (and assistant mask)."""
    out = tokenizer.apply_chat_template(row["messages"], tokenize=True, return_dict=True,
                                        return_assistant_tokens_mask=assistant_only_loss)
    kept = {k: out[k] for k in ("input_ids", "assistant_masks") if k in out}
    if assistant_only_loss and 1 not in kept.get("assistant_masks", []):
        raise RecipeError("trl.assistant_only_loss: a dialogue has no assistant tokens (no "
                          "assistant turn, or a template without {% generation %})")
    return kept


def tokenize(dataset: Any, tokenizer: Any, args: Any, num_proc: int | None) -> Any:
    """
    The rows as TRL would tokenise them, in `num_proc` processes. Dialogues keep their
    `messages` (TRL checks a conversational row for assistant-only loss; SFT data is
    small); pre-training text is dropped once tokenised (the bulk of 14 B tokens).
    """
    columns = dataset.column_names
    common = dict(num_proc=num_proc if num_proc and num_proc > 1 else None, desc="Tokenizing",
                  load_from_cache_file=False)  # tokenise, never reuse datasets' own cache
    if "messages" in columns:
        return dataset.map(_tokenize_chat, **common, fn_kwargs={
            "tokenizer": tokenizer,
            "assistant_only_loss": bool(getattr(args, "assistant_only_loss", False))})
    if args.dataset_text_field in columns:
        return dataset.map(_tokenize_text, batched=True, remove_columns=columns, **common,
                           fn_kwargs={
            "tokenizer": tokenizer, "field": args.dataset_text_field})
    raise RecipeError(f"data.tokenized_cache: rows need `messages` or "
                      f"`{args.dataset_text_field}`, these have {sorted(columns)}")


def _from_rank0(compute: Callable[[], str]) -> str:
    """`compute()` on rank 0, broadcast to the others (computed locally without a group)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return compute()
    value = [compute() if dist.get_rank() == 0 else None]
    dist.broadcast_object_list(value, src=0)
    return str(value[0])


def _build(final: Path, recipe: Recipe, args: Any, tokenizer: Any,
           fields: dict[str, Any]) -> None:
    """Rank 0: tokenise every split into a private directory, mark it, rename it in place."""
    import pyarrow.compute as pc
    from medgo_trainer.training.stages.datafiles import load_splits

    partial = final.with_name(f"{final.name}.partial-{socket.gethostname()}-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    summary: dict[str, Any] = {"num_proc": args.dataset_num_proc or 1}
    for name, split in zip(_SPLITS, load_splits(recipe), strict=True):
        if split is None:
            continue
        tokens = tokenize(split, tokenizer, args, args.dataset_num_proc)
        tokens.save_to_disk(str(partial / name))
        lengths = pc.list_value_length(tokens.data.column("input_ids"))
        summary[name] = {"rows": len(tokens), "tokens": pc.sum(lengths).as_py() or 0}
        for stale in tokens.cache_files:  # map's output in datasets' cache: a second copy
            Path(stale["filename"]).unlink(missing_ok=True)
    summary["seconds"] = round(time.perf_counter() - started, 3)
    (partial / "key.json").write_text(json.dumps(fields, indent=2, ensure_ascii=False))
    (partial / COMPLETE).write_text(json.dumps(summary, indent=2))
    try:
        partial.rename(final)
    except OSError:  # another job finished the same key first: theirs is as good
        if not (final / COMPLETE).is_file():
            raise
        shutil.rmtree(partial, ignore_errors=True)
    log.info("tokenized %s in %.1f s with %d processes -> %s", summary.get("train"),
             summary["seconds"], summary["num_proc"], final)


def _wait_for(final: Path, poll_seconds: float) -> None:
    """Other ranks: wait for rank 0's marker, as long as it takes (no collective pending)."""
    started = last = time.monotonic()
    while not (final / COMPLETE).is_file():
        if time.monotonic() - last >= 60:
            last = time.monotonic()
            log.info("waiting for rank 0 to tokenize into %s (%.0f s so far)", final,
                     last - started)
        time.sleep(poll_seconds)


def tokenized_splits(recipe: Recipe, args: Any, tokenizer: Any, *, is_main: bool,
                     poll_seconds: float = POLL_SECONDS) -> tuple[Any, Any | None]:
    """
    The train and held-out splits, tokenised: from `data.tokenized_cache` when it holds
    this key, otherwise tokenised by rank 0 (`is_main`) while the others wait for it.
    """
    from datasets import load_from_disk
    from medgo_trainer.training.stages.datafiles import data_snapshot_hash

    def key() -> str:
        fields = cache_fields(recipe, args, tokenizer, data_snapshot_hash(recipe))
        return json.dumps(fields)

    fields = json.loads(_from_rank0(key))
    final = Path(recipe.data.tokenized_cache) / cache_key(fields)
    if (final / COMPLETE).is_file():
        log.info("tokenized data from the cache %s", final)
    elif is_main:
        final.parent.mkdir(parents=True, exist_ok=True)
        _build(final, recipe, args, tokenizer, fields)
    else:
        _wait_for(final, poll_seconds)
    splits = [load_from_disk(str(final / name)) if (final / name).is_dir() else None
              for name in _SPLITS]
    return splits[0], splits[1]
