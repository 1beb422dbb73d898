"""`medgo-train submit`: run a recipe through an executor — here, or on Kubernetes.

    medgo-train submit --executor local --stage dpo --recipe medgo-tiny-dpo \\
        --out var/runs/dpo --set data.train=[var/exports/dpo.jsonl]
    medgo-train submit --executor local --nproc 4 --stage sft --recipe r.yaml --out ...
    medgo-train submit --executor k8s --stage dpo --recipe medgo-72b-dpo \\
        --name dpo-week-48 --dry-run            # render + server-side validation only
    medgo-train submit --executor k8s ... --print   # the manifests, no API call
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from medgo_trainer.executors import k8s, local
from medgo_trainer.recipe import load_recipe, resolve_recipe_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train submit`."""
    parser = subparsers.add_parser(
        "submit", help="run a stage through the local or Kubernetes executor",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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


def _submit(args: argparse.Namespace) -> Any:
    from medgo_trainer.settings import TrainerSettings

    settings = TrainerSettings()
    # Validate here, before a process or a 64-GPU job is started; a k8s recipe's data
    # lives on the cluster's volume, so only the local executor opens the data files.
    recipe = load_recipe(resolve_recipe_path(args.recipe), args.overrides,
                         check_data=args.executor == "local")
    if recipe.stage != args.stage:
        raise SystemExit(f"medgo-train submit: recipe is for stage {recipe.stage}, "
                         f"not {args.stage}")
    if args.executor == "local":
        return _local(args)
    if not args.name:
        raise SystemExit("medgo-train submit: --name is required with --executor k8s")
    cluster = k8s.ClusterSpec(image=settings.k8s_image, namespace=settings.k8s_namespace,
                              nodes=args.nodes, gpus_per_node=args.gpus_per_node)
    objects = k8s.build_job(recipe, recipe_name=args.recipe, name=args.name, cluster=cluster,
                            overrides=args.overrides)
    if args.print_only:
        return objects
    with k8s.connect() as api:  # in-cluster service account, or ~/.kube/config
        return k8s.submit(objects, api, dry_run=args.dry_run)


def _local(args: argparse.Namespace) -> dict[str, Any]:
    if args.out is None:
        raise SystemExit("medgo-train submit: --out is required with --executor local")
    command = local.build_command(args.stage, args.recipe, args.out, args.overrides,
                                  nproc=args.nproc)
    log_path = args.out / "job.log"
    handle, proc = local.start(command, log_path)
    last = None
    while proc.poll() is None:
        step = local.progress(log_path)
        if step and step != last:
            sys.stderr.write(f"\rstep {step[0]}/{step[1]}")
            last = step
        time.sleep(1)
    sys.stderr.write("\n")
    return {"pid": handle.pid, "exit_code": proc.returncode, "log": str(log_path),
            "out_dir": str(args.out)}
