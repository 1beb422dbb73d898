"""`medgo-train loop` and `medgo-train loop evaluate`: flags → `LoopOptions` → a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop.evaluation import evaluate_models
from medgo_trainer.training.loop.options import LoopError, LoopOptions
from medgo_trainer.training.loop.run import run_loop

EPILOG = """examples:
  # local stack (scripts/up.sh): feedback on :8002 with a trainer token
  export MEDGO_TRAINER_FEEDBACK_TOKEN=tr-secret
  medgo-train loop --min-pairs 4 --set trl.max_steps=10
  # last week's ratings, a stricter policy, more items per task
  medgo-train loop --since 2026-11-18T00:00:00Z --min-pairs 200 \\
      --policy policy.yaml --limit 200
  # the 72B recipe, evaluated by a temporary 8-GPU vLLM
  medgo-train loop --recipe medgo-72b-dpo --id-prefix medgo-72b --min-pairs 2000 \\
      --serve-set tensor_parallel_size=8 --serve-set max_model_len=4096
  # in the cluster (the weekly CronJob): training and evaluation as Kubernetes jobs
  medgo-train loop --executor k8s --recipe medgo-72b-dpo --id-prefix medgo-72b \\
      --min-pairs 200 --skip-if-few-pairs --serve-timeout 1800
  # what the evaluation Job runs next to its vLLM sidecar
  medgo-train loop evaluate --endpoint http://127.0.0.1:8001 \\
      --model medgo-72b-sft=/var/lib/medgo/models/checkpoints/X/eval/baseline.json \\
      --model X=/var/lib/medgo/models/checkpoints/X/run/serving/eval-report.json
"""

PURGE_EPILOG = """examples:
  medgo-train purge --dry-run     # what the retention periods make due, deletes nothing
  medgo-train purge               # the daily CronJob `retention` runs exactly this
"""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train loop` and its `loop evaluate` step."""
    import medgo_trainer.training.loop as package  # its docstring describes the whole loop

    p = subparsers.add_parser(
        "loop", help="ratings → DPO → evaluate → register → gated promote",
        description=package.__doc__, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=LoopOptions.recipe,
                   help="DPO recipe, file or packaged name (default medgo-tiny-dpo); base, "
                        "adapter and data are set by the loop")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. trl.max_steps=10")
    p.add_argument("--min-pairs", type=int, default=LoopOptions.min_pairs,
                   help=f"refuse to train on fewer pairs (default {LoopOptions.min_pairs})")
    p.add_argument("--skip-if-few-pairs", action="store_true",
                   help="fewer than --min-pairs: say so and exit 0 instead of failing")
    p.add_argument("--since", help="export ratings of interactions from (ISO 8601, with zone)")
    p.add_argument("--until", help="... until this time (excluded)")
    p.add_argument("--min-raters", type=int, help="only interactions this many clinicians rated")
    p.add_argument("--id", dest="checkpoint_id",
                   help="checkpoint id (default <prefix>-dpo-<data hash>)")
    p.add_argument("--id-prefix", default=LoopOptions.id_prefix, help="default medgo-tiny")
    _add_eval_flags(p)
    p.add_argument("--policy", type=Path, help="gate policy YAML (default: eval's default)")
    p.add_argument("--serve-set", action="append", default=[], metavar="NAME=VALUE",
                   help="inference setting for the evaluation server, e.g. max_model_len=512")
    p.add_argument("--serve-timeout", type=float, default=LoopOptions.serve_timeout_s,
                   help="seconds to wait for the evaluation server to load the model")
    k8s = p.add_argument_group("where training and evaluation run")
    k8s.add_argument("--executor", choices=("local", "k8s"), default="local",
                     help="local: here; k8s: a PyTorchJob and a GPU evaluation Job")
    k8s.add_argument("--nodes", type=int, default=8, help="k8s: training nodes")
    k8s.add_argument("--gpus-per-node", type=int, default=8,
                     help="k8s: GPUs per training node, and of the evaluation pod")
    k8s.add_argument("--train-timeout", type=float, default=36 * 3600,
                     help="k8s: seconds to wait for the PyTorchJob (queueing included)")
    k8s.add_argument("--eval-timeout", type=float, default=4 * 3600,
                     help="k8s: seconds the evaluation Job may take")
    p.set_defaults(handler=_run)
    steps = p.add_subparsers(dest="loop_step", metavar="STEP")
    evaluate = steps.add_parser(
        "evaluate", help="step 5 alone, on a running server (the k8s evaluation Job)",
        description="Evaluate the served models (checkpoint id = served model name) on the "
                    "loop's tasks and write one report each: the evaluation Job runs this "
                    "next to its vLLM sidecar, through the same code as the local loop.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    evaluate.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL")
    evaluate.add_argument("--model", dest="models", action="append", required=True,
                          metavar="ID=REPORT", help="served model and where its report goes")
    _add_eval_flags(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    from medgo_trainer.training.loop import retention

    purge = subparsers.add_parser(
        "purge", help="retention: the feedback store and the loop's export copies",
        description=retention.__doc__, epilog=PURGE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    purge.add_argument("--dry-run", action="store_true",
                       help="print what is past its retention period, delete nothing")
    purge.set_defaults(handler=_purge)


def _add_eval_flags(p: argparse.ArgumentParser) -> None:
    """What is evaluated: the same flags for the loop and its evaluation step."""
    p.add_argument("--tasks", default=",".join(LoopOptions.tasks),
                   help="evaluation tasks or groups, comma separated (see `medgo-eval tasks`)")
    p.add_argument("--limit", type=int, default=LoopOptions.limit, help="items per task")
    p.add_argument("--max-tokens", type=int, default=LoopOptions.max_tokens,
                   help="cap on every answer's length")
    p.add_argument("--seed", type=int, default=LoopOptions.seed, help="evaluation sample seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    """`NAME=VALUE` flags as a dict, refusing anything else by its flag."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise LoopError(f"{flag} {item!r} is not NAME=VALUE")
        out[name] = value
    return out


def _tasks(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(t.strip() for t in args.tasks.split(",") if t.strip())


def _evaluate(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    reports = {m: Path(r) for m, r in _pairs(args.models, "--model").items()}
    opts = LoopOptions(tasks=_tasks(args), limit=args.limit, max_tokens=args.max_tokens,
                       seed=args.seed, progress=not args.no_progress)
    evaluate_models(settings, opts, args.endpoint, reports)
    return {"reports": {m: str(r) for m, r in reports.items()}}


def _purge(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    from medgo_trainer.training.loop.retention import purge

    return purge(settings, dry_run=args.dry_run)


def _run(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    opts = LoopOptions(
        recipe=args.recipe, overrides=tuple(args.overrides), min_pairs=args.min_pairs,
        since=args.since, until=args.until, min_raters=args.min_raters,
        checkpoint_id=args.checkpoint_id, id_prefix=args.id_prefix, tasks=_tasks(args),
        limit=args.limit, max_tokens=args.max_tokens, seed=args.seed, policy=args.policy,
        serve_settings=_pairs(args.serve_set, "--serve-set"),
        serve_timeout_s=args.serve_timeout, progress=not args.no_progress,
        skip_few_pairs=args.skip_if_few_pairs)
    if args.executor == "local":
        return run_loop(settings, opts)
    from medgo_trainer.training.executors import k8s
    from medgo_trainer.training.executors.k8s_loop import K8sCompute

    cluster = k8s.cluster_spec(settings, nodes=args.nodes, gpus_per_node=args.gpus_per_node)
    with k8s.connect() as api:
        compute = K8sCompute(settings, opts, api, cluster, train_timeout_s=args.train_timeout,
                             eval_timeout_s=args.eval_timeout)
        return run_loop(settings, opts, compute)
