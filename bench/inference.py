"""Inference benchmark: medgo-tiny (+ its SFT LoRA adapter) on vLLM vs. Hugging Face generate.

    .venv/bin/python bench/inference.py                    # the figures in docs/benchmarks.md
    .venv/bin/python bench/inference.py --concurrency 1 8 --max-tokens 32   # quicker
    .venv/bin/python bench/inference.py --model-dir /work/scratch/medgo-scratch

vLLM part: starts the real server through our launcher (`medgo-inference`, the path
production uses) and sends streaming chat requests naming the adapter, at each
concurrency level (4 × concurrency requests, at least 8). Per request it records time to
first token (TTFT) and time per output token after the first (TPOT); per level, generated
tokens per second of wall time. Then it stops vLLM and runs Hugging Face `generate` on
the same base model + adapter (PEFT, unmerged, like vLLM's LoRA) and the same prompts,
one at a time and in batches. Every request generates exactly --max-tokens tokens
(`ignore_eos` in vLLM, `min_new_tokens` in HF), greedy, so both sides do the same work.

Prompts are real patient questions: the Huatuo benchmark questions from the bundled
corpus, which medgo-tiny never trained on. The load generator shares the machine's
cores with vLLM, as a gateway would; on 2 cores this costs vLLM some throughput.
A default run takes about 3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from medgo_common.paths import default_data_dir, default_model_dir
from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_common.supervise import launched_server

ADAPTER = "medgo-tiny-sft"
QUESTIONS = Path("corpus/huatuo_bentsao/benchmark_question.json")


@dataclass
class Row:
    """One line of the results table."""

    engine: str
    parallel: int
    requests: int
    tokens: int
    wall_s: float
    ttft_ms: list[float]
    tpot_ms: list[float]

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.wall_s


def load_prompts(data_dir: Path, count: int) -> list[str]:
    questions = [q["question"] for q in json.loads((data_dir / QUESTIONS).read_text("utf-8"))]
    return [questions[i % len(questions)] for i in range(count)]


def request_body(prompt: str, max_tokens: int) -> dict:
    return {
        "model": ADAPTER,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def one_stream(client: httpx.AsyncClient, body: dict) -> tuple[float, float, int]:
    """(TTFT s, TPOT s, completion tokens) of one streamed chat completion."""
    start = time.perf_counter()
    first = last = None
    tokens = 0
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        resp.raise_for_status()
        async for line in resp.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                tokens = chunk["usage"]["completion_tokens"]
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                last = time.perf_counter()
                first = first or last
    if first is None or last is None:
        raise RuntimeError("a stream produced no content")
    return first - start, (last - first) / max(tokens - 1, 1), tokens


async def vllm_level(url: str, prompts: list[str], parallel: int, max_tokens: int) -> Row:
    gate = asyncio.Semaphore(parallel)
    limits = httpx.Limits(max_connections=parallel)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:

        async def bounded(prompt: str) -> tuple[float, float, int]:
            async with gate:
                return await one_stream(client, request_body(prompt, max_tokens))

        await bounded(prompts[0])  # warm-up: LoRA load, first prefill shapes
        start = time.perf_counter()
        results = await asyncio.gather(*(bounded(p) for p in prompts))
        wall = time.perf_counter() - start
    return Row(
        "vLLM", parallel, len(prompts), sum(r[2] for r in results), wall,
        [r[0] * 1e3 for r in results], [r[1] * 1e3 for r in results],
    )  # fmt: skip


def run_vllm(args: argparse.Namespace, prompts: list[str], work: Path) -> list[Row]:
    manifest = work / "serving.json"
    ServingManifest(
        checkpoint_id=ADAPTER,
        base_model=str((args.model_dir / "base").resolve()),
        adapters=[AdapterRef(name=ADAPTER, path=str((args.model_dir / "adapters/sft").resolve()))],
    ).save(manifest)
    settings = {
        "MEDGO_INFERENCE_MANIFEST": str(manifest),
        # Admit the highest concurrency into one engine step; the default CPU bound is 16.
        "MEDGO_INFERENCE_MAX_NUM_SEQS": str(max(args.concurrency)),
        "MEDGO_INFERENCE_CPU_OMP_THREADS_BIND": args.omp_bind,
    }
    rows = []
    started = time.perf_counter()
    with launched_server(settings, work / "vllm.log", timeout_s=600) as url:
        print(f"vLLM ready in {time.perf_counter() - started:.0f} s at {url}", flush=True)
        for parallel in args.concurrency:
            count = max(8, 4 * parallel)
            rows.append(asyncio.run(vllm_level(url, prompts[:count], parallel, args.max_tokens)))
            print(f"  vLLM concurrency {parallel}: {rows[-1].tokens_per_s:.0f} tok/s", flush=True)
    return rows


def run_hf(args: argparse.Namespace, prompts: list[str]) -> list[Row]:
    """HF generate, greedy, float32 (as vLLM serves on this CPU), same adapter."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model_dir / "base", padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(args.model_dir / "base", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.model_dir / "adapters/sft").eval()
    texts = [
        tok.apply_chat_template(
            [{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True
        )
        for p in prompts
    ]

    def generate(batch: list[str]) -> int:
        enc = tok(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=args.max_tokens, min_new_tokens=args.max_tokens,
                do_sample=False, pad_token_id=tok.pad_token_id,
            )  # fmt: skip
        return (out.shape[1] - enc["input_ids"].shape[1]) * len(batch)

    generate(texts[:1])  # warm-up
    rows = []
    for size, count in ((1, args.hf_single), (args.hf_batch, args.hf_batch)):
        start = time.perf_counter()
        tokens, per_request = 0, []
        for i in range(0, count, size):
            t0 = time.perf_counter()
            tokens += generate(texts[i : i + size])
            per_request.append((time.perf_counter() - t0) * 1e3 / args.max_tokens)
        rows.append(Row("HF generate", size, count, tokens, time.perf_counter() - start,
                        [], per_request))  # fmt: skip
        print(f"  HF batch {size}: {rows[-1].tokens_per_s:.0f} tok/s", flush=True)
    return rows


def pct(values: list[float], q: float) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    return f"{ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]:.0f}"


def report(rows: list[Row], args: argparse.Namespace, load: tuple[float, ...]) -> str:
    lines = [
        f"{args.model_dir.name} + {ADAPTER}, {args.max_tokens} generated tokens per request, "
        f"greedy; vLLM OMP bind {args.omp_bind!r}; load average before / after: "
        f"{load[0]:.1f} / {os.getloadavg()[0]:.1f} (other processes share the cores)",
        "",
        "| engine | concurrency / batch | requests | gen tokens/s | TTFT p50 / p95 ms "
        "| TPOT p50 / p95 ms |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.engine} | {r.parallel} | {r.requests} | {r.tokens_per_s:.0f} "
            f"| {pct(r.ttft_ms, .5)} / {pct(r.ttft_ms, .95)} "
            f"| {pct(r.tpot_ms, .5)} / {pct(r.tpot_ms, .95)} |"
        )
    hf = {r.parallel: r for r in rows if r.engine != "vLLM"}
    lines.append("")
    for r in (r for r in rows if r.engine == "vLLM"):
        ratios = ", ".join(
            f"{r.tokens_per_s / h.tokens_per_s:.1f}× HF batch {b}" for b, h in hf.items()
        )
        lines.append(f"vLLM at concurrency {r.parallel}: {ratios}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-dir", type=Path, default=default_model_dir() / "medgo-tiny",
                        help="directory with base/ and adapters/sft/ (default: medgo-tiny)")
    parser.add_argument("--data-dir", type=Path, default=default_data_dir(),
                        help="bundled data folder (for the prompts)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32],
                        help="vLLM concurrency levels (default: 1 8 32)")
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="tokens generated per request (default: 64)")
    parser.add_argument("--hf-single", type=int, default=8,
                        help="prompts for HF one at a time (default: 8)")
    parser.add_argument("--hf-batch", type=int, default=32,
                        help="HF batch size, run once (default: 32)")
    parser.add_argument("--omp-bind", default="auto",
                        help="VLLM_CPU_OMP_THREADS_BIND for the server (default: auto)")
    args = parser.parse_args()
    for needed in (args.model_dir / "base" / "config.json", args.data_dir / QUESTIONS):
        if not needed.is_file():
            parser.error(f"{needed} not found (build medgo-tiny: `medgo-train build-tiny`)")

    load = os.getloadavg()
    prompts = load_prompts(args.data_dir, max(8, 4 * max(args.concurrency), args.hf_batch))
    with tempfile.TemporaryDirectory(prefix="medgo-bench-") as work:
        rows = run_vllm(args, prompts, Path(work))
    rows += run_hf(args, prompts)
    print()
    print(report(rows, args, load))


if __name__ == "__main__":
    main()
