"""The training wing's `medgo-train` subcommands: build-tiny, the stages, the registry,
promote and submit. Parsers only; each handler takes `(args, settings)` and calls the
domain module that does the work (`tiny`, `stages`, `registry`, `promotion`,
`executors`), so those modules hold no argparse.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors import k8s, local
from medgo_trainer.training.promotion import EVAL_REPORT, register_run, report_gate
from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path
from medgo_trainer.training.registry import Registry
from medgo_trainer.training.stages import preference, pretrain, sft
from medgo_trainer.training.stages.base import StageRun

_RAW = argparse.RawDescriptionHelpFormatter

#: Stage name → (its `run`, the module whose docstring is the description, one-line help).
STAGES: dict[str, tuple[StageRun, Any, str]] = {
    "pretrain": (pretrain.run, pretrain, "causal-LM (continued) pre-training on `text` rows"),
    "sft": (sft.run, sft, "LoRA supervised fine-tuning on `messages` rows"),
    "dpo": (preference.run, preference, "DPO on {prompt, chosen, rejected} pairs"),
    "kto": (preference.run, preference, "KTO on unpaired {prompt, completion, label} verdicts"),
}

SUBMIT_DOC = """Run a recipe through an executor — here, or on Kubernetes.

    medgo-train submit --executor local --stage dpo --recipe medgo-tiny-dpo \\
        --out var/runs/dpo --set data.train=[var/exports/dpo.jsonl]
    medgo-train submit --executor local --nproc 4 --stage sft --recipe r.yaml --out ...
    medgo-train submit --executor k8s --stage dpo --recipe medgo-72b-dpo \\
        --name dpo-week-48 --dry-run            # render + server-side validation only
    medgo-train submit --executor k8s ... --print   # the manifests, no API call
"""


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register every training subcommand."""
    _add_build_tiny(subparsers)
    for name, (run, module, summary) in STAGES.items():
        _add_stage(subparsers, name, summary, module.__doc__ or "", run)
    _add_registry(subparsers)
    _add_submit(subparsers)


def _add_build_tiny(subparsers: argparse._SubParsersAction) -> None:
    from medgo_trainer.training import tiny

    parser = subparsers.add_parser(
        "build-tiny", help="build (or reuse) the embedded medgo-tiny model",
        description=tiny.__doc__, formatter_class=_RAW)
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument("--seed", type=int, default=None,
                        help="build seed (default: MEDGO_TRAINER_TINY_SEED, 1234)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.set_defaults(handler=_build_tiny)


def _build_tiny(args: argparse.Namespace, settings: TrainerSettings) -> str:
    from medgo_trainer.training.tiny import build_tiny

    seed = settings.tiny_seed if args.seed is None else args.seed
    info = build_tiny(settings, seed=seed, force=args.force, progress=not args.no_progress)
    where = settings.model_dir / "medgo-tiny"
    if info["up_to_date"]:
        return f"medgo-tiny is up to date ({where})"
    ppl = info["held_out_perplexity"]
    return (f"medgo-tiny built in {info['timings']['total_s']:.0f} s at {where}; held-out "
            f"perplexity random {ppl['random_init']:.0f} -> pretrain {ppl['after_pretrain']:.1f}"
            f"; chat {ppl['chat_before_sft']:.1f} -> SFT {ppl['chat_after_sft']:.1f}")


def _add_stage(subparsers: argparse._SubParsersAction, name: str, summary: str, doc: str,
               run: StageRun) -> None:
    """`medgo-train <stage> --recipe R [--set k=v ...] --out DIR`: the same flags for
    every stage, so a new stage is one entry in `STAGES`."""
    parser = subparsers.add_parser(name, help=summary, description=doc, formatter_class=_RAW)
    parser.add_argument("--recipe", required=True,
                        help="YAML file, or the name of a packaged recipe (medgo-tiny-sft)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="override a recipe key, e.g. trl.max_steps=10")
    parser.add_argument("--out", required=True, type=Path, help="checkpoint directory")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.set_defaults(handler=_run_stage, stage_run=run, stage=name)


def _run_stage(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    from medgo_trainer.training.stages.base import require_stage

    recipe = load_recipe(resolve_recipe_path(args.recipe), args.overrides)
    require_stage(recipe, args.stage)
    result = args.stage_run(recipe, args.out, progress=not args.no_progress)
    return {"out_dir": str(result.out_dir), "metrics": result.metrics,
            "recipe": str(result.recipe_path), "data_hash": result.data_hash}


def _add_registry(subparsers: argparse._SubParsersAction) -> None:
    """`medgo-train registry {list,show,add}` and `medgo-train promote`."""
    registry = subparsers.add_parser(
        "registry", help="list, show or add registered checkpoints",
        description="Checkpoints with lineage, in MEDGO_TRAINER_REGISTRY_URL (default: SQLite "
                    "under MEDGO_TRAINER_MODEL_DIR).",
        epilog="examples:\n  medgo-train registry list\n  medgo-train registry show "
               "medgo-tiny-dpo-1a2b\n  medgo-train registry add --id medgo-tiny-dpo-1a2b "
               "--run var/runs/dpo --parent medgo-tiny-sft",
        formatter_class=_RAW)
    actions = registry.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("list", help="every checkpoint, oldest first").set_defaults(
        handler=lambda args, settings: [c.to_dict() for c in
                                        Registry.from_settings(settings).checkpoints()])
    show = actions.add_parser("show", help="one checkpoint and its lineage")
    show.add_argument("checkpoint_id")
    show.set_defaults(handler=lambda args, settings: [
        c.to_dict() for c in Registry.from_settings(settings).lineage(args.checkpoint_id)])
    add = actions.add_parser("add", help="register a finished stage run as a candidate")
    add.add_argument("--id", required=True, dest="checkpoint_id",
                     help="checkpoint id = the adapter name inference will serve")
    add.add_argument("--run", required=True, type=Path, help="the stage's --out directory")
    add.add_argument("--parent", help="the checkpoint this one was trained from")
    add.set_defaults(handler=lambda args, settings: register_run(
        Registry.from_settings(settings), args.checkpoint_id, args.run, args.parent).to_dict())

    promote = subparsers.add_parser(
        "promote", help="gate a candidate on its evaluation, then serve it",
        description="Runs the evaluation gate (candidate vs. the promoted checkpoint); on a "
                    "pass writes <model_dir>/serving.json and retires the previous one.",
        epilog="example:\n  medgo-train promote medgo-tiny-dpo-1a2b --report var/eval/dpo.json",
        formatter_class=_RAW)
    promote.add_argument("checkpoint_id")
    promote.add_argument("--report", type=Path,
                         help=f"candidate report (default: <ckpt>/{EVAL_REPORT})")
    promote.add_argument("--baseline-report", type=Path, help="report of the promoted one")
    promote.add_argument("--policy", type=Path, help="gate policy YAML (default: eval's)")
    promote.set_defaults(handler=_promote)


def _promote(args: argparse.Namespace, settings: TrainerSettings) -> dict[str, Any]:
    gate = report_gate(args.report, args.baseline_report, args.policy)
    promoted = Registry.from_settings(settings).promote(
        args.checkpoint_id, gate=gate, manifest_path=settings.serving_manifest)
    return {"promoted": promoted.to_dict(), "manifest": str(settings.serving_manifest)}


def _add_submit(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "submit", help="run a stage through the local or Kubernetes executor",
        description=SUBMIT_DOC, formatter_class=_RAW)
    parser.add_argument("--executor", choices=("local", "k8s"), required=True)
    parser.add_argument("--stage", choices=local.STAGES, required=True)
    parser.add_argument("--recipe", required=True, help="packaged recipe name or YAML path")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="KEY=VALUE", help="recipe override, e.g. trl.max_steps=10")
    parser.add_argument("--out", type=Path, help="local: the run's output directory")
    parser.add_argument("--nproc", type=int, default=1, help="local: processes (torchrun)")
    parser.add_argument("--name", help="k8s: job name (a DNS label)")
    parser.add_argument("--nodes", type=int, default=8, help="k8s: nodes")
    parser.add_argument("--gpus-per-node", type=int, default=8, help="k8s: GPUs per node")
    parser.add_argument("--dry-run", action="store_true", help="k8s: server-side dry run")
    parser.add_argument("--print", dest="print_only", action="store_true",
                        help="k8s: print the manifests, do not contact the API server")
    parser.set_defaults(handler=_submit)


def _submit(args: argparse.Namespace, settings: TrainerSettings) -> Any:
    # Validate here, before a process or a 64-GPU job is started; a k8s recipe's data
    # lives on the cluster's volume, so only the local executor opens the data files.
    recipe = load_recipe(resolve_recipe_path(args.recipe), args.overrides,
                         check_data=args.executor == "local")
    if recipe.stage != args.stage:
        raise SystemExit(f"medgo-train submit: recipe is for stage {recipe.stage}, "
                         f"not {args.stage}")
    if args.executor == "local":
        if args.out is None:
            raise SystemExit("medgo-train submit: --out is required with --executor local")
        command = local.build_command(args.stage, args.recipe, args.out, args.overrides,
                                      nproc=args.nproc)
        log_path = args.out / "job.log"
        code = local.run_and_follow(command, log_path)
        return {"exit_code": code, "log": str(log_path), "out_dir": str(args.out)}
    if not args.name:
        raise SystemExit("medgo-train submit: --name is required with --executor k8s")
    cluster = k8s.cluster_spec(settings, nodes=args.nodes, gpus_per_node=args.gpus_per_node)
    objects = k8s.build_job(recipe, recipe_name=args.recipe, name=args.name, cluster=cluster,
                            overrides=args.overrides)
    if args.print_only:
        return objects
    with k8s.connect() as api:  # in-cluster service account, or ~/.kube/config
        return k8s.submit(objects, api, dry_run=args.dry_run)
