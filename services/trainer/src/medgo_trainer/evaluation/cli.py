"""``medgo-eval``: evaluate any OpenAI-compatible endpoint, compare runs, gate a promotion.

Examples:

    # straight to vLLM (inference, port 8001), 50 items per task, zero-shot
    medgo-eval run --endpoint http://127.0.0.1:8001 --model medgo-tiny-sft \\
        --tasks cmeee,kuake-qic,mcq-cmexam,safety --limit 50 --shots 0 --out report.json
    # through the gateway (port 8000) with an API key, every task whose data exists
    medgo-eval run --endpoint http://127.0.0.1:8000 --model medgo --api-key-file key.txt \\
        --tasks all --limit 200 --out var/eval/candidate.json
    # multiple choice by the log-likelihood of each answer (vLLM directly: it needs
    # /tokenize and prompt log-probabilities; logprob-chat uses the chat template)
    medgo-eval run --endpoint http://127.0.0.1:8001 --model medgo --tasks mcq \\
        --scoring logprob-chat --out mcq.json
    medgo-eval compare candidate.json baseline.json
    medgo-eval gate --candidate candidate.json --baseline baseline.json --policy policy.yaml
    medgo-eval tasks
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from medgo_trainer.evaluation.catalog import GROUPS, TASK_NAMES, make_task
from medgo_trainer.evaluation.client import EvalRequestError, LogprobsUnavailable
from medgo_trainer.evaluation.compare import compare
from medgo_trainer.evaluation.gate import DEFAULT_POLICY, GatePolicy, evaluate_gate
from medgo_trainer.evaluation.mcq import SCORINGS
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.runner import run_eval
from medgo_trainer.evaluation.settings import EvalSettings


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="evaluate a model behind an endpoint")
    p.add_argument("--endpoint", required=True, help="base URL, e.g. http://127.0.0.1:8001")
    p.add_argument("--model", required=True, help="served model name, e.g. medgo or an adapter")
    p.add_argument(
        "--tasks",
        required=True,
        help=f"comma list of tasks or groups ({', '.join(GROUPS)}); see `medgo-eval tasks`",
    )
    p.add_argument("--limit", type=int, default=None, help="items per task (seeded sample)")
    p.add_argument("--shots", type=int, default=0, help="few-shot demonstrations (default 0)")
    p.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    p.add_argument("--scoring", choices=SCORINGS, default="generate", help="multiple choice mode")
    p.add_argument("--max-tokens", type=int, default=None, help="cap every answer's length")
    p.add_argument("--seed", type=int, default=0, help="sample and few-shot seed (default 0)")
    p.add_argument("--out", type=Path, default=None, help="report JSON (Markdown beside it)")
    p.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="response cache, makes runs resumable (default MEDGO_EVAL_CACHE_DIR, "
        "var/eval-cache)",
    )
    p.add_argument("--no-cache", action="store_true", help="always ask the endpoint")
    key = p.add_mutually_exclusive_group()
    key.add_argument("--api-key", default=None,
                     help="bearer key of the endpoint (default MEDGO_EVAL_API_KEY)")
    key.add_argument("--api-key-file", type=Path, default=None, help="file holding the key")
    p.add_argument("--data-dir", type=Path, default=None, help="default MEDGO_TRAINER_DATA_DIR")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run(args: argparse.Namespace, settings: EvalSettings) -> int:
    api_key = args.api_key or (settings.api_key.get_secret_value() if settings.api_key else None)
    if args.api_key_file is not None:
        api_key = args.api_key_file.read_text(encoding="utf-8").strip()
    report = run_eval(
        args.endpoint,
        args.model,
        [t.strip() for t in args.tasks.split(",") if t.strip()],
        limit=args.limit,
        shots=args.shots,
        concurrency=args.concurrency,
        cache_dir=None if args.no_cache else (args.cache_dir or settings.cache_dir),
        out=args.out,
        data_dir=args.data_dir or settings.data_dir,
        api_key=api_key,
        scoring=args.scoring,
        max_tokens=args.max_tokens,
        seed=args.seed,
        progress=not args.no_progress,
    )
    print(report.to_markdown())
    print(f"\n{report.run.requests} requests sent, {report.run.cache_hits} answers from cache")
    return 0


def _compare(args: argparse.Namespace, settings: EvalSettings) -> int:
    comparison = compare(EvalReport.load(args.candidate), EvalReport.load(args.baseline))
    print(comparison.to_markdown())
    return 0


def _gate(args: argparse.Namespace, settings: EvalSettings) -> int:
    policy = GatePolicy.load(args.policy)  # a bad policy is refused before reading reports
    decision = evaluate_gate(
        EvalReport.load(args.candidate), EvalReport.load(args.baseline), policy
    )
    print(decision.to_markdown())
    return 0 if decision.passed else 1


def _tasks(args: argparse.Namespace, settings: EvalSettings) -> int:
    data_dir = args.data_dir or settings.data_dir
    for name in TASK_NAMES:
        task = make_task(name)
        state = "ready" if task.available(data_dir) else f"no data ({task.eval_file})"
        print(f"{name:16} {task.metric:20} {state}")
    print("\ngroups: " + "; ".join(f"{g} = {', '.join(m)}" for g, m in GROUPS.items()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medgo-eval",
        description=__doc__.split("\n", 1)[0],
        epilog=__doc__.split("\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_run(sub)
    p = sub.add_parser("compare", help="per-task deltas with paired bootstrap CIs")
    p.add_argument("candidate", type=Path)
    p.add_argument("baseline", type=Path)
    p = sub.add_parser("gate", help="apply a promotion policy; exit 1 when it fails")
    p.add_argument("--candidate", type=Path, required=True)
    p.add_argument("--baseline", type=Path, required=True)
    p.add_argument("--policy", type=Path, default=DEFAULT_POLICY, help="YAML policy file")
    p = sub.add_parser("tasks", help="list the tasks, their metrics and whether data exists")
    p.add_argument("--data-dir", type=Path, default=None)
    return parser


_COMMANDS = {"run": _run, "compare": _compare, "gate": _gate, "tasks": _tasks}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _COMMANDS[args.command](args, EvalSettings())
    except (ValueError, OSError) as exc:  # bad input: names, files, policy keys
        print(f"medgo-eval: {exc}", file=sys.stderr)
        return 2
    except LogprobsUnavailable as exc:  # refused before any item was sent
        print(f"medgo-eval: {exc}", file=sys.stderr)
        return 2
    except EvalRequestError as exc:
        print(
            f"medgo-eval: {exc} (with the cache on, a re-run resumes where this stopped)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
