"""Evaluation throughput: examples/s through the gateway, straight to vLLM, and with
Hugging Face generate, on the same slice of the same tasks, in one run.

    .venv/bin/python bench/eval.py                                  # vLLM vs HF (docs figures)
    .venv/bin/python bench/eval.py --model-dir /work/scratch/medgo-scratch
    .venv/bin/python bench/eval.py --with-gateway --no-hf           # direct/gateway/direct
    .venv/bin/python bench/eval.py --gateway http://127.0.0.1:8000 --api-key KEY

vLLM leg: starts the real server through our launcher (`medgo-inference`) on
medgo-tiny + its SFT adapter (or uses --vllm URL) and runs `run_eval` against it with
no cache, so every example is a real request. Gateway leg (with --with-gateway or
--gateway): the same `run_eval` through the gateway, which adds auth, policy, recording
and a proxy hop. `--with-gateway` starts `medgo-gateway` in front of the booted vLLM
(bench/gateway.py's: every policy on, feedback down so records take the spool path,
quotas out of the way) and measures it between two direct legs on the same server;
`--gateway URL` uses a running one, serving whatever its inference backend serves,
named --gateway-model. HF leg:
after vLLM is stopped, the same prompts (same tasks, sample, chat template, answer
caps) through PEFT + `generate`, greedy, float32, in batches of --hf-batch, scored by
the same task code. Each leg prints examples/s and its mean task score; since all legs
decode greedily, the share of identical outputs between HF and vLLM is printed too.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from medgo_common.paths import default_data_dir, default_model_dir
from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_common.supervise import launched_server
from medgo_trainer.evaluation.metrics import aggregate
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.runner import PlannedTask, plan_tasks, run_eval
from medgo_trainer.evaluation.tasks import Reply

ADAPTER = "medgo-tiny-sft"
DEFAULT_TASKS = "cmeee,chip-cdn,chip-sts,kuake-qic,mcq-cmexam,safetybench,safety"


@dataclass
class Leg:
    path: str
    examples: int
    wall_s: float
    macro: float
    outputs: dict[tuple[str, str], str]

    @property
    def per_s(self) -> float:
        return self.examples / self.wall_s


def outputs_of(report: EvalReport) -> dict[tuple[str, str], str]:
    return {(name, e.id): e.output for name, t in report.tasks.items() for e in t.examples}


def endpoint_leg(
    path: str, url: str, model: str, args: argparse.Namespace, api_key: str | None
) -> Leg:
    # Warm-up, untimed: the first request loads the LoRA adapter into the engine.
    run_eval(url, model, args.tasks.split(",")[:1], limit=1, cache_dir=None,
             data_dir=args.data_dir, api_key=api_key, max_tokens=2)  # fmt: skip
    start = time.perf_counter()
    report = run_eval(
        url, model, args.tasks.split(","), limit=args.limit, concurrency=args.concurrency,
        cache_dir=None, data_dir=args.data_dir, api_key=api_key, max_tokens=args.max_tokens,
    )  # fmt: skip
    wall = time.perf_counter() - start
    examples = sum(t.n for t in report.tasks.values())
    mean = sum(t.score for t in report.tasks.values()) / len(report.tasks)
    leg = Leg(path, examples, wall, mean, outputs_of(report))
    print(f"  {path}: {leg.per_s:.2f} examples/s ({examples} in {wall:.1f} s)", flush=True)
    return leg


def served_legs(args: argparse.Namespace, url: str, work: Path) -> list[Leg]:
    """Direct to vLLM at ``url``; with --with-gateway, direct / gateway / direct again.

    The same prompts a second time hit vLLM's prefix cache, and the shared box's load
    drifts, so the gateway leg is bracketed by two direct legs rather than compared
    with whichever ran first.
    """
    legs = [endpoint_leg("vLLM (direct)", url, ADAPTER, args, None)]
    if args.with_gateway:
        from gateway import gateway  # bench/gateway.py: the gateway the proxy bench runs

        with gateway(url, ADAPTER, work) as gw:
            key = gw.headers["Authorization"].removeprefix("Bearer ")
            legs.append(endpoint_leg("gateway → vLLM (same server)", gw.url, gw.model, args,
                                     key))  # fmt: skip
        legs.append(endpoint_leg("vLLM (direct, again)", url, ADAPTER, args, None))
    return legs


def vllm_legs(args: argparse.Namespace, work: Path) -> list[Leg]:
    if args.vllm:
        return served_legs(args, args.vllm, work)
    manifest = work / "serving.json"
    ServingManifest(
        checkpoint_id=ADAPTER,
        base_model=str((args.model_dir / "base").resolve()),
        adapters=[AdapterRef(name=ADAPTER, path=str((args.model_dir / "adapters/sft").resolve()))],
    ).save(manifest)
    settings = {
        "MEDGO_INFERENCE_MANIFEST": str(manifest),
        "MEDGO_INFERENCE_CPU_OMP_THREADS_BIND": args.omp_bind,
    }
    with launched_server(settings, work / "vllm.log", timeout_s=600) as url:
        return served_legs(args, url, work)


def hf_leg(args: argparse.Namespace, plan: list[PlannedTask]) -> Leg:
    """PEFT + generate on the exact prompts run_eval sends, batched per task."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(args.model_dir / "base", padding_side="left")
    base = AutoModelForCausalLM.from_pretrained(args.model_dir / "base", dtype=torch.float32)
    model = PeftModel.from_pretrained(base, args.model_dir / "adapters/sft").eval()

    def generate(texts: list[str], max_new_tokens: int) -> list[str]:
        enc = tok(texts, return_tensors="pt", padding=True)
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=tok.pad_token_id,
            )  # fmt: skip
        return tok.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)

    generate(["预热"], 2)  # warm-up
    scores, outputs, count = [], {}, 0
    start = time.perf_counter()
    for planned in plan:
        task = planned.task
        prompts = [
            tok.apply_chat_template(
                task.messages(e, planned.shots), tokenize=False, add_generation_prompt=True
            )
            for e in planned.examples
        ]
        units = []
        for i in range(0, len(prompts), args.hf_batch):
            batch = planned.examples[i : i + args.hf_batch]
            texts = generate(prompts[i : i + args.hf_batch], planned.max_tokens(args.max_tokens))
            for example, text in zip(batch, texts, strict=True):
                units.append(task.score(example, Reply(text)).unit)
                outputs[(task.name, example.id)] = text
        scores.append(aggregate(task.kind, units))
        count += len(units)
    wall = time.perf_counter() - start
    leg = Leg(
        f"HF generate (batch {args.hf_batch})", count, wall, sum(scores) / len(scores), outputs
    )
    print(f"  {leg.path}: {leg.per_s:.2f} examples/s ({count} in {wall:.1f} s)", flush=True)
    return leg


def table(legs: list[Leg], args: argparse.Namespace) -> str:
    lines = [
        f"tasks {args.tasks}; {args.limit} examples each; answers capped at "
        f"{args.max_tokens} tokens; client concurrency {args.concurrency}",
        "",
        "| path | examples | wall s | examples/s | mean score |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {leg.path} | {leg.examples} | {leg.wall_s:.1f} | {leg.per_s:.2f} "
            f"| {leg.macro:.2f} |"
            for leg in legs
        ),
    ]
    vllm = next(leg for leg in legs if leg.path.startswith("vLLM"))
    hf = next((leg for leg in legs if leg.path.startswith("HF")), None)
    if hf is None:
        return "\n".join(lines)
    same = sum(hf.outputs.get(key) == text for key, text in vllm.outputs.items())
    lines += [
        "",
        f"vLLM is {vllm.per_s / hf.per_s:.1f}× HF generate; identical greedy outputs "
        f"vLLM vs HF: {same}/{len(vllm.outputs)}",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model-dir",
        type=Path,
        default=default_model_dir() / "medgo-tiny",
        help="directory with base/ and adapters/sft/ (default: medgo-tiny)",
    )
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--tasks", default=DEFAULT_TASKS, help=f"default: {DEFAULT_TASKS}")
    parser.add_argument("--limit", type=int, default=16, help="examples per task (default 16)")
    parser.add_argument("--max-tokens", type=int, default=32, help="answer cap (default 32)")
    parser.add_argument("--concurrency", type=int, default=8, help="client concurrency")
    parser.add_argument("--hf-batch", type=int, default=16, help="HF generate batch size")
    parser.add_argument("--vllm", default=None, help="use this running vLLM instead of booting")
    parser.add_argument("--with-gateway", action="store_true",
                        help="also measure through a medgo-gateway started in front of vLLM")
    parser.add_argument("--gateway", default=None, help="also measure through this gateway")
    parser.add_argument("--no-hf", action="store_true", help="skip the HF generate leg")
    parser.add_argument("--api-key", default=None, help="gateway API key")
    parser.add_argument("--gateway-model", default="medgo", help="model name at the gateway")
    parser.add_argument("--omp-bind", default="auto", help="VLLM_CPU_OMP_THREADS_BIND")
    args = parser.parse_args()
    if not (args.model_dir / "base" / "config.json").is_file():
        parser.error(f"{args.model_dir}/base not found (build it: `medgo-train build-tiny`)")

    plan = plan_tasks(args.tasks.split(","), args.data_dir, limit=args.limit, shots=0, seed=0)
    legs = []
    if args.gateway:
        legs.append(endpoint_leg("gateway → vLLM", args.gateway, args.gateway_model, args,
                                 args.api_key))  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="medgo-bench-eval-") as work:
        legs += vllm_legs(args, Path(work))
    if not args.no_hf:
        legs.append(hf_leg(args, plan))
    print()
    print(table(legs, args))


if __name__ == "__main__":
    main()
