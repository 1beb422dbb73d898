"""Tokenise once into a shared cache: TRL's rows exactly, reused by the next run, keyed by
what the ids depend on, and written once when two ranks start together."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from medgo_trainer.training.recipe import Recipe, RecipeError, recipe_from_dict, validate
from medgo_trainer.training.stages import tokenized
from medgo_trainer.training.stages.base import build_sft_trainer

SENTENCES = [
    "高血压患者应规律服药，低盐饮食，定期复查血压。",
    "糖尿病需要控制饮食，监测血糖，必要时使用胰岛素。",
    "感冒发热可多饮水休息，持续高热应及时就医。",
]
TEXT_ROWS = [{"text": s} for s in SENTENCES * 3]
CHAT_ROWS = [{"messages": [{"role": "system", "content": "你是医生助手。"},
                           {"role": "user", "content": q}, {"role": "assistant", "content": a}]}
             for q, a in zip(SENTENCES, SENTENCES[1:] + SENTENCES[:1], strict=True)] * 2


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _recipe(base: Path, stage: str, data: Path, cache: Path | None, **trl: Any) -> Recipe:
    recipe = recipe_from_dict({
        "stage": stage, "base": str(base),
        "data": {"train": [str(data)], "eval": [str(data)],
                 "tokenized_cache": None if cache is None else str(cache)},
        "trl": {"use_cpu": True, "bf16": False, "max_steps": 1, "max_length": 96,
                "per_device_train_batch_size": 2, "report_to": "none", "save_strategy": "no",
                "disable_tqdm": True, "gradient_checkpointing": False,
                "dataset_num_proc": 2, **trl},
    })
    validate(recipe)
    return recipe


def _keys(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


@pytest.mark.parametrize(("stage", "rows", "trl"), [
    ("pretrain", TEXT_ROWS, {"packing": True, "packing_strategy": "wrapped"}),
    ("sft", CHAT_ROWS, {"assistant_only_loss": True, "packing": True, "packing_strategy": "bfd"}),
    ("sft", CHAT_ROWS, {"assistant_only_loss": True, "packing": False}),
], ids=["pretrain-wrapped", "sft-assistant-bfd", "sft-assistant-unpacked"])
def test_the_trainer_gets_the_rows_trl_would_have_prepared(
        micro_policy, tmp_path: Path, stage: str, rows: list, trl: dict) -> None:
    data = write_jsonl(tmp_path / f"{stage}.jsonl", rows)
    own = build_sft_trainer(_recipe(micro_policy.base, stage, data, None, **trl),
                            tmp_path / "a", progress=False)
    cached = build_sft_trainer(_recipe(micro_policy.base, stage, data, tmp_path / "cache", **trl),
                               tmp_path / "b", progress=False)
    for trl_rows, our_rows in ((own.train_dataset, cached.train_dataset),
                               (own.eval_dataset, cached.eval_dataset)):
        assert len(trl_rows) > 0
        assert our_rows.column_names == trl_rows.column_names
        assert our_rows.to_dict() == trl_rows.to_dict()


def test_a_second_run_reuses_the_cache_and_a_changed_key_invalidates_it(
        micro_policy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = tokenized.tokenize

    def counted(dataset, *args, **kwargs):  # the real tokenisation, counted
        calls.append(len(dataset))
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(tokenized, "tokenize", counted)
    data = write_jsonl(tmp_path / "text.jsonl", TEXT_ROWS)
    cache = tmp_path / "cache"
    build_sft_trainer(_recipe(micro_policy.base, "pretrain", data, cache), tmp_path / "o1",
                      progress=False)
    assert calls == [len(TEXT_ROWS)] * 2  # train and held-out, once
    (key,) = _keys(cache)
    marker = json.loads((cache / key / tokenized.COMPLETE).read_text())
    assert marker["train"]["rows"] == len(TEXT_ROWS) and marker["num_proc"] == 2
    assert json.loads((cache / key / "key.json").read_text())["stage"] == "pretrain"

    # Another run, another output directory, another block size: read, not tokenised.
    build_sft_trainer(_recipe(micro_policy.base, "pretrain", data, cache, max_length=48),
                      tmp_path / "o2", progress=False)
    assert len(calls) == 2 and _keys(cache) == [key]

    # Changed data (one more row) and a changed recipe key: each a new key, tokenised.
    write_jsonl(data, [*TEXT_ROWS, {"text": "新增一行。"}])
    build_sft_trainer(_recipe(micro_policy.base, "pretrain", data, cache), tmp_path / "o3",
                      progress=False)
    chat = write_jsonl(tmp_path / "chat.jsonl", CHAT_ROWS)
    for flag in (True, False):
        build_sft_trainer(_recipe(micro_policy.base, "sft", chat, cache,
                                  assistant_only_loss=flag), tmp_path / f"s{flag}",
                          progress=False)
    assert len(calls) == 8 and len(_keys(cache)) == 4
    assert not [name for name in _keys(cache) if ".partial-" in name]


_RANK = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    from medgo_trainer.training.recipe import recipe_from_dict
    from medgo_trainer.training.stages.backend import is_main_process
    from medgo_trainer.training.stages.base import load_tokenizer, trainer_args
    from medgo_trainer.training.stages.tokenized import tokenized_splits

    recipe = recipe_from_dict(json.loads(sys.argv[1]))
    args, _ = trainer_args(recipe, Path(sys.argv[2]), progress=False)  # joins the gloo group
    train, held_out = tokenized_splits(recipe, args, load_tokenizer(recipe),
                                       is_main=is_main_process(), poll_seconds=0.2)
    import torch.distributed as dist
    print(json.dumps({"group": dist.is_initialized() and dist.get_world_size(),
                      "rows": train.to_dict()["input_ids"],
                      "cache": [f["filename"] for f in train.cache_files]}))
""")


def test_two_ranks_tokenize_once_into_one_cache(micro_policy, tmp_path: Path) -> None:
    """Two processes of one torchrun-style job (RANK 0 and 1, a gloo group): rank 0 hashes
    and tokenises, rank 1 gets the key by broadcast, waits for the marker and reads the
    same files."""
    data = write_jsonl(tmp_path / "text.jsonl", TEXT_ROWS)
    cache = tmp_path / "cache"
    recipe = {"stage": "pretrain", "base": str(micro_policy.base),
              "data": {"train": [str(data)], "tokenized_cache": str(cache)},
              "trl": {"use_cpu": True, "bf16": False, "max_length": 64, "report_to": "none",
                      "dataset_num_proc": 2}}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _RANK, json.dumps(recipe), str(tmp_path / "out")],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=900)  # generous: a loaded 2-core box
            assert proc.returncode == 0, stderr[-3000:]
            outs.append(json.loads(stdout.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    assert [o["group"] for o in outs] == [2, 2]
    assert outs[0]["rows"] == outs[1]["rows"] and len(outs[0]["rows"]) == len(TEXT_ROWS)
    (key,) = _keys(cache)  # one cache, no leftover partial directory
    assert all(path.startswith(str(cache / key)) for o in outs for path in o["cache"])


def test_the_cache_is_for_the_stages_that_tokenise_through_it(micro_policy, tmp_path: Path
                                                               ) -> None:
    data = write_jsonl(tmp_path / "dpo.jsonl", [{"prompt": "问", "chosen": "好", "rejected": "坏"}])
    with pytest.raises(RecipeError, match=r"data\.tokenized_cache: only pretrain and sft"):
        validate(recipe_from_dict({
            "stage": "dpo", "base": str(micro_policy.base), "adapter": str(micro_policy.base),
            "data": {"train": [str(data)], "tokenized_cache": str(tmp_path / "c")}}))
    assert not (tmp_path / "c").exists()
