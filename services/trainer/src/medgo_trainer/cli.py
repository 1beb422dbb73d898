"""`medgo-train`: thin subcommands over the trainer's wings (TRL's `trl <cmd>` shape).

Each wing has its own cli module with `add_parsers(subparsers)`, which registers its
subcommands and sets each one's `handler(args, settings)`; this file lists those
modules, builds `TrainerSettings` once, and turns the wings' errors into one line and
an exit code. Adding a command touches only its wing's cli module.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from medgo_trainer.configfile import ConfigError
from medgo_trainer.data.prepare.clean import CorpusFormatError
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors.k8s import SubmitError
from medgo_trainer.training.loop.options import LoopError
from medgo_trainer.training.registry import RegistryError

EPILOG = """examples:
  medgo-train build-tiny                      # the embedded model (cached)
  medgo-train build-tiny --force --seed 7     # rebuild with another seed
  medgo-train pretrain --recipe medgo-tiny-pretrain --out var/runs/pt \\
      --set base=var/models/medgo-tiny/base --set data.train=[corpus.jsonl]
  medgo-train sft --recipe medgo-tiny-sft --out var/runs/sft --set trl.max_steps=20
  medgo-train sft --recipe medgo-72b-sft --out /ckpt/sft --set trl.learning_rate=1e-5
  medgo-train prepare ../shared/data/corpus --out var/prepared --workers 2
  medgo-train dpo --recipe medgo-tiny-dpo --out var/runs/dpo \\
      --set data.train=[var/exports/dpo.jsonl]
  medgo-train registry add --id medgo-tiny-dpo-1a2b --run var/runs/dpo --parent medgo-tiny-sft
  medgo-train promote medgo-tiny-dpo-1a2b --report var/eval/dpo.json
  medgo-train loop --min-pairs 4 --set trl.max_steps=10   # ratings → DPO → gated promote
  medgo-train submit --executor k8s --stage dpo --recipe medgo-72b-dpo --name dpo-w48 --print
"""

#: Cli modules with `add_parsers(subparsers)`, one per wing (and the loop).
COMMAND_MODULES = (
    "medgo_trainer.training.cli",
    "medgo_trainer.data.prepare.cli",
    "medgo_trainer.data.sft.cli",
    "medgo_trainer.training.loop.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medgo-train",
        description="MedGo trainer: build medgo-tiny and run the pipeline stages.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parsers(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        result = args.handler(args, TrainerSettings())
    except ConfigError as exc:
        print(f"medgo-train {args.command}: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"medgo-train {args.command}: {exc}", file=sys.stderr)
        return 1
    except (RegistryError, CorpusFormatError, SubmitError, FileExistsError,
            LoopError) as exc:
        print(f"medgo-train {args.command}: {exc}", file=sys.stderr)
        return 2
    print(result if isinstance(result, str) else json.dumps(result, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
