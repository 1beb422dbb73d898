"""`medgo-feedback-admin`: exports and retention from the command line.

Examples (settings come from the same MEDGO_FEEDBACK_* variables as the service):

    medgo-feedback-admin migrate
    medgo-feedback-admin export dpo --since 2026-11-01T00:00:00+00:00 > dpo.jsonl
    medgo-feedback-admin export kto --checkpoint medgo-tiny-sft --min-raters 2 -o kto.jsonl
    medgo-feedback-admin purge --older-than-days 365

Exports stream in constant memory and are audited like API exports (caller `cli`).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from sqlalchemy import exc as sa_exc

from medgo_feedback import store
from medgo_feedback.db import (
    build_engine,
    build_sessionmaker,
    describe_db_error,
    safe_url,
    upgrade_to_head,
)
from medgo_feedback.exports import ExportKind, jsonl_chunks, stream_export
from medgo_feedback.exports.query import ExportFilter
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
    purge.add_argument("--older-than-days", type=int, required=True)
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
    if args.older_than_days < 1:
        raise SystemExit("medgo-feedback-admin: --older-than-days must be at least 1")
    cutoff = datetime.now(UTC) - timedelta(days=args.older_than_days)
    engine = build_engine(settings)
    try:
        with build_sessionmaker(engine).begin() as session:
            counts = store.purge_older_than(session=session, cutoff=cutoff)
    finally:
        engine.dispose()
    print(
        f"purged {counts.interactions} interactions and {counts.ratings} ratings "
        f"created before {cutoff.isoformat()}"
    )
    return 0


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
        return _purge(args, settings)
    except (sa_exc.OperationalError, sa_exc.ProgrammingError) as exc:
        raise SystemExit(
            f"medgo-feedback-admin: database error on {describe_db_error(settings, exc)}; "
            "check MEDGO_FEEDBACK_DATABASE_URL and run `medgo-feedback-admin migrate`"
        ) from None


if __name__ == "__main__":
    raise SystemExit(main())
