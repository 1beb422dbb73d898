"""Trainer benchmarks: pipeline overhead, packing, prepare throughput and near-dup recall,
and the per-GPU memory of the 72B recipes.

    source scripts/env.sh
    .venv/bin/python bench/trainer.py                       # everything, medgo-tiny
    .venv/bin/python bench/trainer.py --only memory prepare # no training
    .venv/bin/python bench/trainer.py --only prepare --engines local datatrove --tasks 4
    .venv/bin/python bench/trainer.py --base DIR --adapter DIR --steps 20
    .venv/bin/python bench/trainer.py --only zero3          # ~15 min on 2 cores
    .venv/bin/python bench/trainer.py --only tokenize --num-proc 1 2

- *train*: SFT (packing off and on) and DPO on medgo-tiny, in the same process
  through this pipeline (`stages.sft.run` / `stages.preference.run`: recipe loading and
  validation, data checks, the merged SFT reference, saving, the serving adapter) and as
  a bare TRL script with the same config, model and data. Tokens/s = input tokens seen
  by the Trainer / `train_runtime`; the overhead column compares train-loop throughput,
  the wall columns whole runs (loading, checks, saving included). Each path runs twice
  in bare, pipeline, pipeline, bare order and the best of each is kept, so load drift on
  a shared machine does not land on one side.
- *prepare*: MB/s over the bundled corpus plus planted near-duplicates (a few
  characters edited per copy), and the share of planted copies removed (recall) at the
  default threshold, for each engine on the same input: `local` (`prepare_corpus`,
  `--workers` processes) and `datatrove` (`prepare_corpus_datatrove`, `--tasks` tasks,
  `--workers` at a time, datatrove's LocalPipelineExecutor). MB/s is wall time over
  raw input bytes, start-up of each engine's processes included.
- *zero3*: the four 72B recipes, shrunk by `training/stages/rehearsal.py` (paths and
  sizes only), under DeepSpeed ZeRO-3 on two CPU ranks through torchrun, each SIGKILLed
  after step 3 and resumed with `resume_from_checkpoint: auto`: whether step 3 is
  repeated with the same loss and learning rate, and the wall time of each launch; then
  SFT in float32 under ZeRO-3 and under plain DDP (two gloo ranks), tokens/s from the
  Trainer's `train_tokens_per_second`, so the engine's overhead is known. Each rank's
  memory at the end of training (`stages.memory`: live tensors on CPU) is printed next
  to what the 72B table's memory model predicts for medgo-tiny's parameter counts.
- *tokenize*: tokens/s of the tokenised-data cache's step (`stages/tokenized.py`) over
  the bundled corpus as pre-training text, per `--num-proc`, the projection for 14 B
  tokens on one 64-core node (linear in cores at the num_proc-1 rate), and the seconds
  TRL still spends per run on the cached ids (labels, packing).
- *memory*: model-state memory per GPU for Qwen2-72B, computed from its config (exact
  parameter count on the meta device) for full fine-tuning and for the recipes' LoRA,
  under ZeRO-2 and ZeRO-3 on 8 and 64 GPUs, next to DeepSpeed's own estimator.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import tempfile
import time
from pathlib import Path
from typing import Any

from medgo_common.paths import default_data_dir, default_model_dir

GIB = 1 << 30
# Qwen2-72B's config.json (the public checkpoint), so nothing is downloaded.
QWEN2_72B = dict(hidden_size=8192, intermediate_size=29568, num_hidden_layers=80,
                 num_attention_heads=64, num_key_value_heads=8, vocab_size=152064,
                 max_position_embeddings=32768, tie_word_embeddings=False)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


# --- train: pipeline vs bare TRL ------------------------------------------------------

def _sft_rows(n: int) -> list[dict]:
    from medgo_trainer.data.corpus import read_dialogues

    rows = []
    for dialogue in read_dialogues(default_data_dir()):
        rows.append({"messages": dialogue})
        if len(rows) == n:
            return rows
    return rows


def _dpo_rows(n: int) -> list[dict]:
    path = default_data_dir() / "preference/medicalgpt_medical_reward/medical_reward_test.jsonl"
    rows = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            r = json.loads(line)
            rows.append({"prompt": [{"role": "user", "content": r["question"]}],
                         "chosen": r["response_chosen"], "rejected": r["response_rejected"]})
            if len(rows) == n:
                break
    return rows


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return path


def _bare_sft(recipe: Any, out: Path) -> dict[str, float]:
    """What a hand-written TRL script does with the same settings."""
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    trl = dict(recipe.trl)
    init = trl.pop("model_init_kwargs", {}) or {}
    args = SFTConfig(output_dir=str(out), seed=recipe.seed, data_seed=recipe.seed, **trl)
    tokenizer = AutoTokenizer.from_pretrained(recipe.base)
    model = AutoModelForCausalLM.from_pretrained(recipe.base, **init)
    data = load_dataset("json", data_files=recipe.data.train, split="train")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **recipe.lora))
    result = trainer.train()
    trainer.save_model(str(out))
    return {"tokens": trainer.state.num_input_tokens_seen,
            "train_seconds": result.metrics["train_runtime"]}


def _bare_dpo(recipe: Any, out: Path) -> dict[str, float]:
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    trl = dict(recipe.trl)
    init = trl.pop("model_init_kwargs", {}) or {}
    args = DPOConfig(output_dir=str(out), seed=recipe.seed, data_seed=recipe.seed, **trl)
    tokenizer = AutoTokenizer.from_pretrained(recipe.base)
    model = AutoModelForCausalLM.from_pretrained(recipe.base, **init)
    model = PeftModel.from_pretrained(model, recipe.adapter).merge_and_unload()
    rows = [json.loads(line) for line in Path(recipe.data.train[0]).read_text().splitlines()]
    for r in rows:
        r["chosen"] = [{"role": "assistant", "content": r["chosen"]}]
        r["rejected"] = [{"role": "assistant", "content": r["rejected"]}]
    trainer = DPOTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                         processing_class=tokenizer,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **recipe.lora))
    result = trainer.train()
    trainer.save_model(str(out))
    return {"tokens": trainer.state.num_input_tokens_seen,
            "train_seconds": result.metrics["train_runtime"]}


def bench_train(base: Path, adapter: Path, steps: int, work: Path,
                repeats: int) -> list[str]:
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path
    from medgo_trainer.training.stages import preference, sft

    sft_data = _write(work / "sft.jsonl", _sft_rows(steps * 16))
    dpo_data = _write(work / "dpo.jsonl", _dpo_rows(steps * 8))
    common = [f"base={base}", f"trl.max_steps={steps}", "trl.save_strategy='no'",
              "trl.logging_steps=1000", "trl.disable_tqdm=true"]
    cases = [
        ("SFT, packing off", "medgo-tiny-sft", [f"data.train=[{sft_data}]", "data.eval=[]",
                                               "trl.packing=false"], sft.run, _bare_sft),
        ("SFT, packing on", "medgo-tiny-sft", [f"data.train=[{sft_data}]", "data.eval=[]",
                                              "trl.packing=true"], sft.run, _bare_sft),
        ("DPO", "medgo-tiny-dpo", [f"data.train=[{dpo_data}]", f"adapter={adapter}"],
         preference.run, _bare_dpo),
    ]
    lines = ["| run | pipeline tok/s | bare TRL tok/s | overhead (train loop) "
             "| pipeline wall s | bare wall s |", "|---|---|---|---|---|---|"]
    for i, (label, name, extra, run, bare) in enumerate(cases):
        best: dict[str, tuple[float, float]] = {}  # path -> (tokens/s, wall s), best of runs
        # Alternate bare, pipeline, pipeline, bare: on a shared machine the load drifts,
        # and best-of-two per path in ABBA order cancels most of that drift.
        for rep, path in enumerate(("bare", "pipe", "pipe", "bare")[: 2 * repeats]):
            recipe = load_recipe(resolve_recipe_path(name), [*common, *extra])
            out = work / f"{path}-{i}-{rep}"
            started = time.perf_counter()
            if path == "bare":
                m = bare(recipe, out)
                tps = m["tokens"] / m["train_seconds"]
            else:
                result = run(recipe, out, progress=False)
                tps = result.metrics["train_tokens"] / result.metrics["train_seconds"]
            wall = time.perf_counter() - started
            prev = best.get(path, (0.0, float("inf")))
            best[path] = (max(prev[0], tps), min(prev[1], wall))
        (pipe_tps, pipe_wall), (bare_tps, bare_wall) = best["pipe"], best["bare"]
        overhead = (bare_tps / pipe_tps - 1) * 100
        lines.append(f"| {label} | {pipe_tps:,.0f} | {bare_tps:,.0f} | {overhead:+.1f}% "
                     f"| {pipe_wall:.1f} | {bare_wall:.1f} |")
        print(lines[-1], flush=True)
    return lines


# --- prepare: throughput and planted near-duplicate recall -----------------------------

def _edit(text: str, rng: random.Random, edits: int) -> str:
    chars = list(text)
    for _ in range(edits):
        i = rng.randrange(len(chars))
        chars[i] = rng.choice("的了是在有和病症药治")
    return "".join(chars)


def bench_prepare(work: Path, planted: int, workers: int, engines: list[str],
                  tasks: int) -> list[str]:
    from medgo_trainer.data.prepare.clean import read_documents
    from medgo_trainer.data.prepare.pipeline import PrepareConfig, prepare_corpus
    from medgo_trainer.data.prepare.scaleout import ScaleOutConfig, prepare_corpus_datatrove

    corpus = default_data_dir() / "corpus"
    rng = random.Random(0)
    originals = [d for d in read_documents(corpus / "huatuo_bentsao/llama_data.json")
                 if len(d.text) >= 150][:planted]
    lines = ["| corpus | engine | tasks / workers | MB | docs in | kept | exact dups | near dups "
             "| MB/s | planted recall |", "|---|---|---|---|---|---|---|---|---|---|"]
    for edits_per_100 in (1, 3):
        src = work / f"raw-{edits_per_100}"
        src.mkdir()
        copies = [{"id": f"planted-{i}", "text": _edit(d.text, rng, len(d.text) * edits_per_100
                                                       // 100)} for i, d in enumerate(originals)]
        _write(src / "zz_planted.jsonl", copies)
        for engine in engines:
            out = work / f"prepared-{edits_per_100}-{engine}"
            if engine == "local":
                report = prepare_corpus([corpus, src], out, PrepareConfig(workers=workers))
            else:
                report = prepare_corpus_datatrove([corpus, src], out,
                                                  ScaleOutConfig(tasks=tasks, workers=workers))
            kept_planted = sum(1 for shard in out.glob("part-*.jsonl") for line in shard.open()
                               if json.loads(line)["source"] == "zz_planted.jsonl")
            recall = 1 - kept_planted / len(copies)
            mb = report.input_bytes / 1e6
            parallel = f"{tasks} / {workers}" if engine == "datatrove" else f"- / {workers}"
            lines.append(f"| bundled corpus + {len(copies)} copies with {edits_per_100}% of "
                         f"chars edited | {engine} | {parallel} | {mb:.1f} | "
                         f"{report.input.docs:,} | {report.kept.docs:,} | "
                         f"{report.removed['exact_dup'].docs:,} | "
                         f"{report.removed['near_dup'].docs:,} | {mb / report.seconds:.2f} | "
                         f"{recall:.1%} |")
            print(lines[-1], flush=True)
    return lines


# --- memory: 72B model states per GPU ------------------------------------------------

def _param_counts() -> tuple[int, int, int]:
    """(total, largest module, LoRA r=16 trainable) for Qwen2-72B, exact, on meta."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    with torch.device("meta"):
        model = Qwen2ForCausalLM(Qwen2Config(**QWEN2_72B))
    total = sum(p.numel() for p in model.parameters())
    largest = max(sum(p.numel() for p in m.parameters(recurse=False))
                  for m in model.modules())
    lora = sum(16 * (m.in_features + m.out_features) for n, m in model.named_modules()
               if n.rsplit(".", 1)[-1] in LORA_TARGETS)
    return total, largest, lora


def bench_memory() -> list[str]:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    total, largest, lora = _param_counts()
    lines = [f"Qwen2-72B: {total / 1e9:.2f} B parameters, largest module (embedding) "
             f"{largest / 1e9:.2f} B, LoRA r=16 on all projections: {lora / 1e6:.1f} M "
             "trainable.", "",
             "| ZeRO | GPUs | full FT, computed GiB | full FT, DeepSpeed estimator GiB "
             "| LoRA r=16, computed GiB | LoRA r=16 + ZeRO++ hpz 8 (the recipes), GiB |",
             "|---|---|---|---|---|---|"]
    for stage in (2, 3):
        for gpus in (8, 64):
            nodes = gpus // 8
            # Mixed-precision Adam, DeepSpeed's accounting: 2 B bf16 weights, 2 B bf16 +
            # 4 B fp32 gradients, 4 B fp32 master weights, 8 B Adam moments (m, v).
            if stage == 2:  # weights replicated, gradients + optimizer sharded
                full = 2 * total + 18 * total / gpus
                _, ds = estimate_zero2_model_states_mem_needs(total, 8, nodes, cpu_offload=False)
                # LoRA: frozen bf16 base replicated; only adapter states exist and shard.
                lora_mem = 2 * total + 2 * lora + 18 * lora / gpus
            else:  # everything sharded; one gathered module at a time (fp32 buffer)
                full = 4 * largest + 18 * total / gpus
                _, ds, _ = estimate_zero3_model_states_mem_needs(
                    total, largest, 8, nodes, cpu_offload=False, zero_init=True)
                lora_mem = 2 * largest + 2 * (total + lora) / gpus + 18 * lora / gpus
            # ZeRO++ hpz keeps a second bf16 partition of the weights, over the GPUs of a
            # node (8), on every GPU: what lets the per-layer all-gathers stay on NVLink.
            hpz = f"{(lora_mem + 2 * total / 8) / GIB:.1f}" if stage == 3 else "—"
            lines.append(f"| {stage} | {gpus} | {full / GIB:.1f} | {ds / GIB:.1f} "
                         f"| {lora_mem / GIB:.1f} | {hpz} |")
    print("\n".join(lines), flush=True)
    return lines


# --- zero3: the 72B recipes on two CPU ranks, killed and resumed ---------------------

def _zero3_data(work: Path) -> dict[str, str]:
    chats = _sft_rows(16)
    pairs = _dpo_rows(8)
    verdicts = [{"prompt": p["prompt"], "completion": p["chosen" if i % 2 else "rejected"],
                 "label": bool(i % 2)} for i, p in enumerate(pairs)]
    texts = [{"text": "".join(m["content"] for m in c["messages"])} for c in chats]
    return {stage: str(_write(work / f"z3-{stage}.jsonl", rows)) for stage, rows in
            (("pretrain", texts), ("sft", chats), ("dpo", pairs), ("kto", verdicts))}


_MEMORY_LINE = re.compile(r"\[rank (\d+)\] memory: model states ([0-9.]+) MiB, peak RSS "
                          r"([0-9.]+) MiB, parameters (\d+) \((\d+) trainable\)")


def _rank_memory(output: str) -> dict[int, tuple[float, float, int, int]]:
    """Each rank's `stages.memory.log_line`: (model states MiB, peak RSS MiB, params, LoRA)."""
    return {int(m[0]): (float(m[1]), float(m[2]), int(m[3]), int(m[4]))
            for m in _MEMORY_LINE.findall(output)}


def _modelled_mib(total: int, lora: int, ranks: int) -> float:
    """
    The memory model of the 72B table (`bench_memory`, LoRA under ZeRO-3 with ZeRO++ hpz)
    at the end of training, when no module is gathered and no gradient is held: the bf16
    weights partitioned over the ranks, plus hpz's secondary bf16 partition over the
    ranks of a node (here all of them), plus for each LoRA parameter its bf16 weight,
    fp32 master copy and two fp32 Adam moments (14 B), partitioned.
    """
    return (2 * total / ranks + 2 * total / ranks + 14 * lora / ranks) / (1 << 20)


def bench_zero3(base: Path, adapter: Path, work: Path) -> None:
    from medgo_trainer.training.export import export
    from medgo_trainer.training.stages.rehearsal import launch, overrides

    data = _zero3_data(work)
    reference = work / "z3-sft-merged"
    started = time.perf_counter()
    export(base, [adapter], reference, progress=False)
    print(f"export medgo-tiny base + SFT adapter: {time.perf_counter() - started:.1f} s")
    print("| stage | killed after step | restart repeats step 3 (loss, lr) | first launch s "
          "| restart s | model states per rank MiB (modelled) | peak RSS per rank MiB |")
    print("|---|---|---|---|---|---|---|")
    for stage in ("pretrain", "sft", "dpo", "kto"):
        paths: dict[str, Any] = {"base": str(base), "data.train": [data[stage]]}
        if stage in ("dpo", "kto"):
            paths.update(adapter=str(adapter), reference=str(reference))
        else:
            paths["data.eval"] = [data[stage]]
            paths["data.tokenized_cache"] = str(work / f"z3-tokenized-{stage}")
        out, sets = work / f"z3-{stage}", overrides(paths)
        killed = launch(stage, f"medgo-72b-{stage}", out, sets, kill_at_step=3)
        resumed = launch(stage, f"medgo-72b-{stage}", out, sets)
        same = (resumed.returncode == 0 and len(killed.steps) == 3 and all(
            abs(resumed.steps[0][k] - killed.steps[2][k]) <= 1e-3 * abs(killed.steps[2][k])
            for k in ("loss", "learning_rate")))
        memory = _rank_memory(resumed.output)
        states = " / ".join(f"{m[0]:.1f}" for m in memory.values())
        rss = " / ".join(f"{m[1]:.0f}" for m in memory.values())
        modelled = (_modelled_mib(*next(iter(memory.values()))[2:], len(memory))
                    if memory else float("nan"))
        print(f"| {stage} | {len(killed.steps)} | {'yes' if same else 'NO'} | "
              f"{killed.seconds:.0f} | {resumed.seconds:.0f} | {states} ({modelled:.1f}) "
              f"| {rss} |")
    print("\n| SFT, float32, 2 CPU ranks | tokens/s | wall s | model states per rank MiB "
          "| peak RSS per rank MiB |\n|---|---|---|---|---|")
    paths = {"base": str(base), "data.train": [data["sft"]], "data.eval": [data["sft"]],
             "data.tokenized_cache": str(work / "z3-tokenized-sft")}
    for name, extra in (("DeepSpeed ZeRO-3", []),
                        ("plain DDP (gloo)", ["trl.deepspeed=null", "trl.use_cpu=true"])):
        sets = [*overrides(paths), "trl.bf16=false", "trl.resume_from_checkpoint=null", *extra]
        run = launch("sft", "medgo-72b-sft", work / f"z3-speed-{len(extra)}", sets)
        summary = re.findall(r"'train_tokens_per_second': '?([0-9.]+)", run.output)
        memory = _rank_memory(run.output)
        print(f"| {name} | {summary[-1] if summary else '?'} | {run.seconds:.0f} | "
              f"{' / '.join(f'{m[0]:.1f}' for m in memory.values())} | "
              f"{' / '.join(f'{m[1]:.0f}' for m in memory.values())} |")


# --- tokenize: the cache's tokenisation step and what TRL still does per run ---------

PRETRAIN_TOKENS = 14e9  # MedGo's continued pre-training corpus
NODE_CORES = 64


def _prepare_seconds(tokenizer_dir: Path, data: Path, cache: Path, num_proc: int) -> float:
    """Wall time of building the pretrain trainer on a warm cache: TRL's labels and packing
    of the cached ids (plus a 2-layer model's init), i.e. what still runs on every rank."""
    from medgo_trainer.training.recipe import recipe_from_dict, validate
    from medgo_trainer.training.stages.base import build_sft_trainer

    recipe = recipe_from_dict({
        "stage": "pretrain", "base": str(tokenizer_dir),
        "model": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                  "num_attention_heads": 2, "num_key_value_heads": 1},
        "data": {"train": [str(data)], "tokenized_cache": str(cache)},
        "trl": {"use_cpu": True, "bf16": False, "max_length": 4096, "packing": True,
                "packing_strategy": "wrapped", "report_to": "none", "disable_tqdm": True,
                "dataset_num_proc": num_proc, "gradient_checkpointing": False},
    })
    validate(recipe)
    started = time.perf_counter()
    build_sft_trainer(recipe, cache.parent / f"out-{num_proc}", progress=False)
    return time.perf_counter() - started


def bench_tokenize(base: Path, work: Path, procs: list[int]) -> None:
    """
    Tokens/s of `stages/tokenized.tokenize` (TRL's pre-training rows: EOS appended, ids,
    batched) over the bundled corpus as `text` rows, with each `num_proc`, datasets'
    cache off so every run tokenises; then the time TRL needs per run on the cached ids.
    The projection assumes tokens/s grow linearly with cores at the measured per-process
    rate (num_proc 1).
    """
    import datasets
    import pyarrow.compute as pc
    from datasets import load_dataset
    from medgo_trainer.data.corpus import dialogue_text, read_dialogues
    from medgo_trainer.training.stages.tokenized import tokenize
    from transformers import AutoTokenizer

    data = _write(work / "tokenize-corpus.jsonl",
                  [{"text": dialogue_text(d)} for d in read_dialogues(default_data_dir())])
    rows = load_dataset("json", data_files=[str(data)], split="train")
    tokenizer = AutoTokenizer.from_pretrained(base)
    args = argparse.Namespace(dataset_text_field="text", assistant_only_loss=False)
    mb = data.stat().st_size / 1e6
    print(f"tokenizer {base} ({len(tokenizer)} entries); {len(rows)} documents, {mb:.1f} MB")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print("| num_proc | tokens | wall s | tokens/s | tokens/s per process | tokens per CPU-s "
          "(num_proc 1) |\n|---|---|---|---|---|---|")
    datasets.disable_caching()
    rates: dict[str, float] = {}
    for num_proc in procs:
        started, cpu = time.perf_counter(), time.process_time()
        out = tokenize(rows, tokenizer, args, num_proc)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        tokens = pc.sum(pc.list_value_length(out.data.column("input_ids"))).as_py()
        rate = tokens / seconds
        per_cpu = f"{tokens / cpu:,.0f}" if num_proc == 1 else "-"  # workers' CPU not seen
        if num_proc == 1:
            rates = {"wall": rate, "CPU": tokens / cpu}
        print(f"| {num_proc} | {tokens:,} | {seconds:.1f} | {rate:,.0f} | "
              f"{rate / num_proc:,.0f} | {per_cpu} |")
    datasets.enable_caching()
    for basis, per_core in rates.items():
        hours = PRETRAIN_TOKENS / (per_core * NODE_CORES) / 3600
        print(f"projection ({basis}): {PRETRAIN_TOKENS / 1e9:.0f} B tokens / ({per_core:,.0f} "
              f"tokens/s per core x {NODE_CORES} cores) = {hours:.2f} h on one "
              f"{NODE_CORES}-core node")
    print("\n| num_proc | first run: tokenise into the cache + TRL's labels and wrapped "
          "packing to 4,096, s | next run (cache hit), s |\n|---|---|---|")
    for num_proc in procs:
        cache = work / f"tokenize-cache-{num_proc}"
        cold = _prepare_seconds(base, data, cache, num_proc)
        print(f"| {num_proc} | {cold:.1f} | {_prepare_seconds(base, data, cache, num_proc):.1f} |")
    print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    tiny = default_model_dir() / "medgo-tiny"
    parser.add_argument("--only", nargs="+",
                        choices=("train", "prepare", "memory", "zero3", "tokenize"),
                        default=["train", "prepare", "memory"])
    parser.add_argument("--base", type=Path, default=tiny / "base")
    parser.add_argument("--adapter", type=Path, default=tiny / "adapters" / "sft")
    parser.add_argument("--steps", type=int, default=10, help="optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=2, choices=(1, 2),
                        help="runs per path (2: ABBA order, best of two)")
    parser.add_argument("--planted", type=int, default=500, help="planted near-duplicates")
    parser.add_argument("--workers", type=int, default=2, help="prepare processes")
    parser.add_argument("--engines", nargs="+", choices=("local", "datatrove"),
                        default=["local", "datatrove"], help="prepare engines to compare")
    parser.add_argument("--tasks", type=int, default=4, help="datatrove prepare tasks")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2],
                        help="tokenize: dataset_num_proc values to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-trainer-") as tmp:
        work = Path(tmp)
        if "memory" in args.only:
            bench_memory()
        if "prepare" in args.only:
            bench_prepare(work, args.planted, args.workers, args.engines, args.tasks)
        if "tokenize" in args.only:
            bench_tokenize(args.base.resolve(), work, args.num_proc)
        if "zero3" in args.only:
            bench_zero3(args.base.resolve(), args.adapter.resolve(), work)
        if "train" in args.only:
            bench_train(args.base.resolve(), args.adapter.resolve(), args.steps, work,
                        args.repeats)


if __name__ == "__main__":
    main()
