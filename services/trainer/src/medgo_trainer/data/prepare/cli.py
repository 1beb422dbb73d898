"""`medgo-train prepare`: the flags of both engines → a config → `prepare_corpus` (local
engine, `pipeline.py`) or `prepare_corpus_datatrove` (`scaleout.py`, imported only when
chosen, so a local run never pays datatrove's import)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medgo_trainer.data.prepare import pipeline
from medgo_trainer.data.prepare.clean import CleanConfig
from medgo_trainer.data.prepare.dedup import DedupConfig
from medgo_trainer.data.prepare.pipeline import PrepareConfig, prepare_corpus
from medgo_trainer.settings import TrainerSettings


def _executor(name: str) -> str:
    """argparse type: a datatrove executor that can run here (checked before any work)."""
    if name == "local":  # needs nothing; spares every `prepare` the datatrove import
        return name
    from medgo_trainer.data.prepare.scaleout import ScaleOutError, require_executor

    try:
        require_executor(name)
    except ScaleOutError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return name


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train prepare`."""
    parser = subparsers.add_parser(
        "prepare", help="clean, de-identify and de-duplicate a raw corpus into shards",
        description=pipeline.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  medgo-train prepare ../shared/data/corpus --out var/prepared\n"
               "  medgo-train prepare raw/*.jsonl --out var/prepared --workers 2 "
               "--near-threshold 0.7 --min-zh-ratio 0.5\n"
               "  medgo-train prepare ../shared/data/corpus --out var/prepared-dt "
               "--engine datatrove --tasks 4 --workers 2\n"
               "  medgo-train prepare /lustre/raw --out /lustre/prepared --engine datatrove "
               "--executor slurm --tasks 2000 --workers 256 --partition cpu --time 12:00:00\n"
               "see docs/prepare.md for the Ray (KubeRay RayJob) variant and task sizing")
    parser.add_argument("inputs", nargs="+", type=Path, help="corpus files or directories")
    parser.add_argument("--out", required=True, type=Path, help="empty output directory")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for clean/deid (local engine); tasks run at once "
                             "(datatrove)")
    parser.add_argument("--min-chars", type=int, default=CleanConfig.min_chars)
    parser.add_argument("--max-chars", type=int, default=CleanConfig.max_chars)
    parser.add_argument("--min-zh-ratio", type=float, default=CleanConfig.min_zh_ratio)
    parser.add_argument("--near-threshold", type=float, default=DedupConfig.threshold,
                        help="MinHash Jaccard at which a document is a near-duplicate")
    parser.add_argument("--shard-docs", type=int, default=PrepareConfig.shard_docs,
                        help="documents per shard (local engine; datatrove: one shard per task)")
    parser.add_argument("--engine", choices=("local", "datatrove"), default="local",
                        help="local: this process pool and an in-memory LSH (one machine); "
                             "datatrove: the same steps as datatrove stages, which scale out")
    dt = parser.add_argument_group(
        "datatrove engine", "how the stages run (see prepare/scaleout.py); executor "
        "resources default to prepare.scaleout.ClusterOptions")
    dt.add_argument("--tasks", type=int,
                    help="corpus shards of the per-document stages; each task reads whole "
                         "input files, so tasks beyond the number of files idle "
                         "(default: --workers)")
    dt.add_argument("--executor", type=_executor, choices=("local", "slurm", "ray"),
                    default="local", help="datatrove's Local, Slurm or Ray pipeline executor")
    dt.add_argument("--work-dir", type=Path,
                    help="intermediate data and logs; shared storage on a cluster "
                         "(default: OUT/.datatrove); a rerun resumes from it")
    dt.add_argument("--partition", help="Slurm partition")
    dt.add_argument("--time", help="Slurm time limit per task, e.g. 12:00:00")
    dt.add_argument("--cpus-per-task", type=int, help="Slurm/Ray CPUs per task")
    dt.add_argument("--mem-per-cpu-gb", type=float, help="Slurm/Ray memory per CPU")
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace, settings: TrainerSettings) -> str:
    try:
        config = _config(args)
    except ValueError as exc:  # a knob out of range: say which, not a traceback
        raise SystemExit(f"medgo-train prepare: {exc}") from exc
    if isinstance(config, PrepareConfig):
        report = prepare_corpus(args.inputs, args.out, config)
    else:
        from medgo_trainer.data.prepare.scaleout import ScaleOutError, prepare_corpus_datatrove

        try:
            report = prepare_corpus_datatrove(args.inputs, args.out, config)
        except ScaleOutError as exc:  # the cluster cannot run it: say why, no traceback
            raise SystemExit(f"medgo-train prepare: {exc}") from exc
    if report is None:
        return (f"submitted {args.executor} jobs; the last one writes {args.out}/report.json "
                f"(datatrove logs under {args.work_dir or args.out / '.datatrove'}/logs)")
    return f"{report.table()}\nshards: {len(report.shards)} in {args.out} (report.json)"


def _config(args: argparse.Namespace):  # -> PrepareConfig | scaleout.ScaleOutConfig
    """The engine's configuration from the flags (datatrove imported only when chosen)."""
    clean = CleanConfig(min_chars=args.min_chars, max_chars=args.max_chars,
                        min_zh_ratio=args.min_zh_ratio)
    dedup = DedupConfig(threshold=args.near_threshold)
    workers = max(1, args.workers)
    if args.engine == "local":
        return PrepareConfig(clean=clean, dedup=dedup, workers=workers,
                             shard_docs=args.shard_docs)
    from medgo_trainer.data.prepare.scaleout import ClusterOptions, ScaleOutConfig

    names = ("partition", "time", "cpus_per_task", "mem_per_cpu_gb")
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    tasks = workers if args.tasks is None else args.tasks
    return ScaleOutConfig(clean=clean, dedup=dedup, tasks=tasks,
                          workers=workers, executor=args.executor, work_dir=args.work_dir,
                          cluster=ClusterOptions(**given))
