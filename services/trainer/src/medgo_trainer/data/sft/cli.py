"""`medgo-train build-sft`, `sft-qa-generate` and `sft-review`.

build-sft reads a mixture recipe (a YAML path or a packaged name, with `--set`
overrides), checks every source, then writes the mixture and its datasheet; it takes
the stages' `--recipe R --out DIR --set K=V`, so the job API runs it like a stage.
sft-qa-generate turns guideline passages into review candidates through an
OpenAI-compatible endpoint; sft-review walks a reviewer through them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from medgo_trainer.data.sft.build import build_mixture
from medgo_trainer.data.sft.guidelines import generate, read_passages
from medgo_trainer.data.sft.llm import Endpoint
from medgo_trainer.data.sft.mixture import DEFAULT_MIXTURE, load_mixture, resolve_mixture_path
from medgo_trainer.data.sft.review import ReviewQueue, review
from medgo_trainer.settings import TrainerSettings

_RAW = argparse.RawDescriptionHelpFormatter


def add_parsers(subparsers: argparse._SubParsersAction) -> None:
    """Register the three SFT-data subcommands."""
    build = subparsers.add_parser(
        "build-sft", help="build the SFT instruction mixture from a YAML recipe",
        description=__doc__, formatter_class=_RAW,
        epilog="examples:\n  medgo-train build-sft --out var/sft/default\n"
               "  medgo-train build-sft --recipe my-mixture.yaml --out var/sft/v2 "
               "--data-dir ../shared/data\n"
               "  medgo-train build-sft --out var/sft/small --set sources.cblue.max_examples=500")
    build.add_argument("--recipe", "--mixture", dest="recipe", default=str(DEFAULT_MIXTURE),
                       help="mixture recipe: YAML path or packaged name "
                            "(default: sft-mixture-default)")
    build.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override, e.g. sources.drugs.weight=1.5")
    build.add_argument("--out", type=Path, required=True, help="new or empty output directory")
    build.add_argument("--data-dir", type=Path, default=None,
                       help="shared data folder (default: MEDGO_TRAINER_DATA_DIR)")
    build.add_argument("--no-progress", action="store_true", help="no progress bar")
    build.set_defaults(handler=_build)

    gen = subparsers.add_parser(
        "sft-qa-generate", help="guideline passages -> QA candidates in a review queue",
        description=__doc__, formatter_class=_RAW,
        epilog="examples:\n  medgo-train sft-qa-generate guidelines.txt "
               "--queue var/sft/review.sqlite3 --endpoint http://127.0.0.1:8000 "
               "--api-key-env MEDGO_API_KEY")
    gen.add_argument("passages", type=Path, help="text file, passages separated by blank lines")
    gen.add_argument("--queue", type=Path, required=True, help="review queue (SQLite file)")
    gen.add_argument("--endpoint", required=True, help="OpenAI-compatible base URL")
    gen.add_argument("--model", default="medgo", help="served model name")
    gen.add_argument("--api-key-env", default=None,
                     help="environment variable holding the endpoint's API key")
    gen.set_defaults(handler=_generate)

    rev = subparsers.add_parser(
        "sft-review", help="approve / reject / edit queued QA candidates (stdin)",
        description=__doc__, formatter_class=_RAW,
        epilog="examples:\n  medgo-train sft-review --queue var/sft/review.sqlite3 "
               "--reviewer dr.wang")
    rev.add_argument("--queue", type=Path, required=True)
    rev.add_argument("--reviewer", required=True, help="who decides (recorded per pair)")
    rev.set_defaults(handler=_review)


def _build(args: argparse.Namespace, settings: TrainerSettings) -> dict:
    data_dir = args.data_dir or settings.data_dir
    mixture = load_mixture(resolve_mixture_path(args.recipe), args.overrides)
    sheet = build_mixture(mixture, data_dir, args.out, progress=not args.no_progress)
    return {"out": str(args.out), "examples": sheet["examples"],
            "per_source": sheet["per_source"], "removed": sheet["removed"]}


def _generate(args: argparse.Namespace, settings: TrainerSettings) -> dict:
    api_key = os.environ.get(args.api_key_env) if args.api_key_env else None
    endpoint = Endpoint(args.endpoint, args.model, api_key)
    return generate(read_passages(args.passages), endpoint,
                    ReviewQueue(args.queue, create=True))


def _review(args: argparse.Namespace, settings: TrainerSettings) -> dict:
    queue = ReviewQueue(args.queue)
    tally = review(queue, args.reviewer, sys.stdin, sys.stdout)
    return {"decided": tally, "queue": queue.counts()}
