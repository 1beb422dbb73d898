"""`medgo-train`: thin subcommands over the trainer's modules (TRL's `trl <cmd>` shape).

Each subcommand lives in its own module, which registers it with `add_parser(subparsers)`
and sets `handler`; this file only lists those modules, so adding a command is one line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import sys

from medgo_trainer.executors.k8s import SubmitError
from medgo_trainer.loop import LoopError
from medgo_trainer.prepare.clean import CorpusFormatError
from medgo_trainer.recipe import RecipeError
from medgo_trainer.registry import RegistryError

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

#: Modules with `add_parser(subparsers)`; each registers one subcommand.
COMMAND_MODULES = (
    "medgo_trainer.tiny",
    "medgo_trainer.stages.pretrain",
    "medgo_trainer.stages.sft",
    "medgo_trainer.stages.dpo",
    "medgo_trainer.stages.kto",
    "medgo_trainer.prepare.pipeline",
    "medgo_trainer.registry",
    "medgo_trainer.executors.submit",
    "medgo_trainer.loop",
    "medgo_trainer.sft_data.cli",
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
        importlib.import_module(name).add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        result = args.handler(args)
    except RecipeError as exc:
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
