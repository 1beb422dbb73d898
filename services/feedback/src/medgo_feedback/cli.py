"""`medgo-feedback-admin`: exports and retention from the command line.

Examples (settings come from the same MEDGO_FEEDBACK_* variables as the service):

    medgo-feedback-admin migrate
    medgo-feedback-admin export dpo --since 2026-11-01T00:00:00+00:00 > dpo.jsonl
    medgo-feedback-admin export kto --checkpoint medgo-tiny-sft --min-raters 2 -o kto.jsonl
    medgo-feedback-admin purge --dry-run          # what the retention period makes due
    medgo-feedback-admin purge                    # MEDGO_FEEDBACK_RETENTION_DAYS (365)
    medgo-feedback-admin canary-gate --stable medgo-72b-sft --candidate medgo-72b-dpo-w49
    medgo-feedback-admin canary-gate --stable A --candidate B \
        --override "ward round review: 3 raters, outdated-guideline reason fixed" --actor dr-li

`purge` deletes interactions older than the retention period with their ratings, in
batches of MEDGO_FEEDBACK_PURGE_BATCH_ROWS (progress on stderr); it leaves the loop's
export copies on the model volume to `medgo-train purge`, which runs both (the daily
CronJob; docs/operations.md, "Retention").

`canary-gate` exits 0 when the candidate may go to 100 % (non-inferior, or overridden
with a recorded reason), 1 otherwise, so a rollout script can stop on it.

Exports stream in constant memory and are audited like API exports (caller `cli`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from sqlalchemy import exc as sa_exc

from medgo_feedback import retention, store
from medgo_feedback.canary_gate import evaluate_gate, record_override
from medgo_feedback.db import (
    build_engine,
    build_sessionmaker,
    describe_db_error,
    safe_url,
    upgrade_to_head,
)
from medgo_feedback.exports import ExportKind, jsonl_chunks, stream_export
from medgo_feedback.exports.query import ExportFilter
from medgo_feedback.online_gate import GateResult, GateRule
from medgo_feedback.settings import FeedbackSettings


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r} has no time zone (add +00:00 or Z)")
    return parsed


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medgo-feedback-admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("migrate", help="bring the database schema to the latest revision")
    export = commands.add_parser("export", help="stream a TRL dataset as JSONL")
    export.add_argument("kind", choices=[kind.value for kind in ExportKind])
    export.add_argument("--since", type=_aware, help="interactions created at/after (ISO 8601)")
    export.add_argument("--until", type=_aware, help="interactions created before (ISO 8601)")
    export.add_argument("--checkpoint", help="only interactions answered by this checkpoint")
    export.add_argument("--min-raters", type=int, default=1, help="raters needed (default 1)")
    export.add_argument("-o", "--output", help="write here instead of standard output")
    purge = commands.add_parser("purge", help="delete old interactions with their ratings")
    purge.add_argument("--older-than-days", type=int,
                       help="instead of MEDGO_FEEDBACK_RETENTION_DAYS (an ops decision)")
    purge.add_argument("--dry-run", action="store_true",
                       help="print what would be deleted, delete nothing")
    gate = commands.add_parser(
        "canary-gate", help="canary vs stable acceptance by clinicians, and the rollout rule"
    )
    gate.add_argument("--stable", required=True, help="checkpoint id serving most traffic")
    gate.add_argument("--candidate", required=True, help="checkpoint id of the canary")
    gate.add_argument("--margin", type=float, help="non-inferiority margin (default: settings)")
    gate.add_argument("--min-ratings", type=int, help="ratings per arm (default: settings)")
    gate.add_argument("--confidence", type=float, help="two-sided level (default: settings)")
    gate.add_argument("--since", type=_aware, help="only ratings at/after (ISO 8601)")
    gate.add_argument("--override", metavar="REASON", help="record going ahead anyway, and why")
    gate.add_argument("--actor", help="who overrides (required with --override)")
    gate.add_argument("--json", action="store_true", help="print the result as JSON")
    return parser


def _export(args: argparse.Namespace, settings: FeedbackSettings) -> int:
    if args.min_raters < 1:
        raise SystemExit("medgo-feedback-admin: --min-raters must be at least 1")
    engine = build_engine(settings)
    where = ExportFilter(
        since=args.since, until=args.until, checkpoint=args.checkpoint, min_raters=args.min_raters
    )
    rows = stream_export(
        factory=build_sessionmaker(engine),
        caller="cli",
        kind=ExportKind(args.kind),
        where=where,
        batch_rows=settings.export_batch_rows,
    )
    count = 0

    def counted():
        nonlocal count
        for row in rows:
            count += 1
            yield row

    out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
    try:
        for chunk in jsonl_chunks(counted()):
            out.write(chunk)
    finally:
        if args.output:
            out.close()
        engine.dispose()
    print(f"exported {count} {args.kind} rows", file=sys.stderr)
    return 0


def _purge(args: argparse.Namespace, settings: FeedbackSettings) -> int:
    if args.older_than_days is not None and args.older_than_days < 1:
        raise SystemExit("medgo-feedback-admin: --older-than-days must be at least 1")
    engine = build_engine(settings)
    factory = build_sessionmaker(engine)
    try:
        if args.dry_run:
            with factory() as session:
                plan = retention.report(session=session, settings=settings,
                                        retention_days=args.older_than_days)
            print(f"dry run: would purge {plan.due.interactions} interactions and "
                  f"{plan.due.ratings} ratings created before {plan.cutoff.isoformat()}")
            return 0
        total = store.PurgeCounts(interactions=0, ratings=0)
        while True:
            result = retention.purge_due(factory=factory, settings=settings,
                                         retention_days=args.older_than_days)
            total = store.PurgeCounts(
                interactions=total.interactions + result.purged.interactions,
                ratings=total.ratings + result.purged.ratings,
            )
            print(f"purged {total.interactions} interactions so far, "
                  f"{result.due.interactions} due", file=sys.stderr)
            if not result.purged.interactions or not result.due.interactions:
                break
    finally:
        engine.dispose()
    print(
        f"purged {total.interactions} interactions and {total.ratings} ratings "
        f"created before {result.cutoff.isoformat()}"
    )
    return 0


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def _describe(result: GateResult) -> str:
    rule = result.rule
    lines = [
        f"{arm}: {a.checkpoint}  {a.acceptable}/{a.ratings} acceptable = "
        f"{_pct(a.acceptance_rate)}  (Wilson {_pct(a.low)} … {_pct(a.high)})"
        for arm, a in (("stable   ", result.stable), ("candidate", result.candidate))
    ]
    lines.append(
        f"difference candidate − stable: {_pct(result.difference)}  "
        f"({100 * rule.confidence:g} % Newcombe {_pct(result.low)} … {_pct(result.high)})"
    )
    lines.append(
        f"rule: lower bound > −{_pct(rule.margin)} with ≥ {rule.min_ratings} ratings per arm"
        f" → {result.verdict}"
    )
    if result.override_reason:
        lines.append(f"overridden: {result.override_reason}")
    lines.append("PASS: may go to 100 %" if result.passed else "HOLD: do not go to 100 %")
    return "\n".join(lines)


def _canary_gate(args: argparse.Namespace, settings: FeedbackSettings) -> int:
    if args.override is not None and not (args.actor and args.override.strip()):
        raise SystemExit("medgo-feedback-admin: --override needs a reason and --actor")
    try:
        rule = GateRule(
            margin=settings.gate_margin if args.margin is None else args.margin,
            min_ratings=args.min_ratings or settings.gate_min_ratings,
            confidence=args.confidence or settings.gate_confidence,
        )
    except ValueError as exc:
        raise SystemExit(f"medgo-feedback-admin: {str(exc).splitlines()[-1]}") from None
    engine = build_engine(settings)
    try:
        with build_sessionmaker(engine).begin() as session:
            result = evaluate_gate(session=session, stable=args.stable,
                                   candidate=args.candidate, rule=rule, since=args.since)
            if args.override is not None:
                record_override(session=session, result=result, reason=args.override,
                                actor=f"{args.actor} (via cli)")
                result = result.model_copy(
                    update={"passed": True, "override_reason": args.override.strip()}
                )
    finally:
        engine.dispose()
    print(result.model_dump_json(indent=2) if args.json else _describe(result))
    return 0 if result.passed else 1


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    settings = FeedbackSettings()
    try:
        if args.command == "migrate":
            upgrade_to_head(settings)
            print(f"{safe_url(settings)} is at the latest revision")
            return 0
        if args.command == "export":
            return _export(args, settings)
        if args.command == "canary-gate":
            return _canary_gate(args, settings)
        return _purge(args, settings)
    except (sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
        raise SystemExit(
            f"medgo-feedback-admin: database error on {describe_db_error(settings, exc)}; "
            "check MEDGO_FEEDBACK_DATABASE_URL and run `medgo-feedback-admin migrate`"
        ) from None


if __name__ == "__main__":
    raise SystemExit(main())
