"""Feedback store benchmark: rating ingest over HTTP, and a large DPO export.

For each backend (SQLite with WAL + synchronous=FULL; a throwaway PostgreSQL 15 with
fsync on, started from the machine's binaries), on a fresh database:

1. ingest: the real service (`python -m medgo_feedback`: one uvicorn process, or
   `--workers` worker processes on PostgreSQL) takes `POST /v1/ratings` from
   `--clients` concurrent clients for `--ingest-seconds`; figures = acknowledged (2xx)
   ratings per second, and the service's CPU time (all its processes) per
   acknowledged rating (what one dedicated core would sustain). The load generator
   runs on the same machine and competes for the same cores.
2. export: `--rows` synthetic ratings (2 raters per interaction, ~10 answers per
   prompt, 60 % acceptable, a fifth of the rejected ones corrected) are bulk-loaded,
   then `medgo-feedback-admin export dpo` streams them to /dev/null in a child
   process; figures = wall time, that process's CPU time and peak RSS (from wait4).
   Its CPU time is the figure to compare across runs on a busy machine; the wall time
   also contains the PostgreSQL server's share and waits for a core.
3. purge: the retention period is set so the older half of those interactions is due,
   and `retention.purge_batch` (the transaction `POST /v1/retention/purge` and the admin
   CLI repeat) deletes them batch by batch (`--purge-batch` interactions, default the
   setting's 1,000), then the count of what is still due is taken once, as a purge call
   ends; figures = total wall time, interactions purged per second, the longest batch
   (how long one purge transaction holds SQLite's writer lock) and the final count.

    .venv/bin/python bench/feedback.py                 # 1,000,000 rows, both backends
    .venv/bin/python bench/feedback.py --rows 50000 --ingest-seconds 5   # quick run
    .venv/bin/python bench/feedback.py --rows 0 --backends postgresql --workers 2

Goals (issue 5): >= 2,000 ratings/s on PostgreSQL; 1M-row export < 30 s, RSS < 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from medgo_feedback import retention
from medgo_feedback.db import build_engine, build_sessionmaker, upgrade_to_head
from medgo_feedback.models import Interaction, Rating
from medgo_feedback.settings import FeedbackSettings
from medgo_feedback.store import prompt_key
from medgo_testing.postgres import throwaway_postgres
from medgo_testing.services import served_feedback
from sqlalchemy import insert

TOKEN = "bench-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHUNK = 20_000
SYNTHETIC_START = datetime(2026, 1, 1, tzinfo=UTC)  # one interaction a second from here


@dataclass
class Result:
    backend: str
    ingest_per_s: float = 0.0
    ingest_errors: int = 0
    server_cpu_ms: float = 0.0
    load_s: float = 0.0
    export_rows: int = 0
    export_s: float = 0.0
    export_cpu_s: float = 0.0
    export_rss_mb: float = 0.0
    purged: int = 0
    purge_s: float = 0.0
    purge_longest_ms: float = 0.0
    purge_report_ms: float = 0.0


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'feedback.db'}"
        return
    with throwaway_postgres(workdir / "pg", durable=True) as url:
        yield url


async def ingest(base: str, clients: int, seconds: float) -> tuple[float, int]:
    """Ratings/s acknowledged while `clients` post as fast as the service answers."""
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=base, headers=AUTH, limits=limits, timeout=30) as http:
        now = datetime.now(UTC).isoformat()
        ids = [str(uuid.uuid4()) for _ in range(200)]
        for start in range(0, len(ids), 100):
            records = [_record(i, now) for i in ids[start : start + 100]]
            answer = await http.post("/v1/interactions", json={"records": records})
            answer.raise_for_status()
        ok = errors = 0
        deadline = time.perf_counter() + seconds

        async def client(worker: int) -> None:
            nonlocal ok, errors
            n = 0
            while time.perf_counter() < deadline:
                body = {
                    "interaction_id": ids[n % len(ids)],
                    "rater": f"bench-{worker}-{n}",
                    "verdict": "acceptable" if n % 3 else "unacceptable",
                    "reasons": [] if n % 3 else ["incomplete"],
                }
                answer = await http.post("/v1/ratings", json=body)
                if answer.is_success:
                    ok += 1
                else:
                    errors += 1
                n += 1

        started = time.perf_counter()
        await asyncio.gather(*(client(w) for w in range(clients)))
        return ok / (time.perf_counter() - started), errors


def _record(interaction_id: str, created_at: str) -> dict:
    return {
        "id": interaction_id,
        "created_at": created_at,
        "user_id": "bench",
        "department": "内科",
        "checkpoint_id": "medgo-tiny-sft",
        "messages": [{"role": "user", "content": "高血压患者可以服用布洛芬吗？"}],
        "response": "应在医生指导下短期使用。",
        "latency_ms": 100.0,
    }


def synthetic(rows: int, seed: int = 5) -> Iterator[tuple[list[dict], list[dict]]]:
    """Chunks of (interactions, ratings): `rows` ratings, two raters per interaction."""
    rng = random.Random(seed)
    start = SYNTHETIC_START
    prompts = max(1, rows // 20)
    for first in range(0, rows // 2, CHUNK // 2):
        interactions, ratings = [], []
        for n in range(first, min(first + CHUNK // 2, rows // 2)):
            prompt = n % prompts
            messages = [{"role": "user", "content": f"第{prompt}号问题：头痛伴发热应如何处理？"}]
            iid = uuid.UUID(int=rng.getrandbits(128))
            when = start + timedelta(seconds=n)
            interactions.append(
                {
                    "id": iid, "created_at": when, "received_at": when, "user_id": "u",
                    "department": "内科", "checkpoint_id": "medgo-tiny-sft", "adapter": None,
                    "messages": messages, "prompt_key": prompt_key(messages),
                    "response": f"回答{n}：建议多休息，必要时就医。" * 4,
                    "finish_reason": "stop", "latency_ms": 500.0, "prompt_tokens": 20,
                    "completion_tokens": 60,
                }
            )
            for rater in ("dr1", "dr2"):
                good = rng.random() < 0.6
                ratings.append(
                    {
                        "interaction_id": iid, "rater": rater,
                        "verdict": "acceptable" if good else "unacceptable",
                        "reasons": [] if good else ["incomplete"], "comment": None,
                        "corrected_answer": None if good or rng.random() > 0.2
                        else f"更正{n}：应先测体温，排除感染。",
                        "idempotency_key": None, "created_at": when, "updated_at": when,
                    }
                )
        yield interactions, ratings


def bulk_load(settings: FeedbackSettings, rows: int) -> float:
    engine = build_engine(settings)
    started = time.perf_counter()
    try:
        with engine.begin() as connection:
            for interactions, ratings in synthetic(rows):
                connection.execute(insert(Interaction), interactions)
                connection.execute(insert(Rating), ratings)
    finally:
        engine.dispose()
    return time.perf_counter() - started


def service_cpu_s(process: psutil.Process) -> float:
    """User + system CPU seconds of the service and its worker processes so far."""
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        times = member.cpu_times()
        total += times.user + times.system
    return total


def export_dpo(env: dict[str, str]) -> tuple[int, float, float, float]:
    """(rows, seconds, CPU seconds, peak RSS MB) of `medgo-feedback-admin export dpo`."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "medgo_feedback.cli", "export", "dpo", "-o", os.devnull],
        env={**os.environ, **env},
        stderr=subprocess.PIPE,
        text=True,
    )
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    message = process.stderr.read().strip()
    process.stderr.close()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"export failed: {message}")
    exported = int(message.split()[1])  # "exported N dpo rows"
    return exported, elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def purge_older_half(settings: FeedbackSettings, rows: int,
                     batch: int) -> tuple[int, float, float, float]:
    """(interactions purged, seconds, longest batch ms, count-of-due ms) with the cutoff
    in the middle of `synthetic`'s time range, batch by batch as a purge call runs."""
    policy = settings.model_copy(update={"retention_days": 365, "purge_batch_rows": batch})
    cutoff = SYNTHETIC_START + timedelta(seconds=rows // 4)
    engine = build_engine(policy)
    factory = build_sessionmaker(engine)
    purged, longest = 0, 0.0
    started = time.perf_counter()
    try:
        while True:
            batch_started = time.perf_counter()
            counts = retention.purge_batch(factory=factory, settings=policy, cutoff=cutoff)
            longest = max(longest, time.perf_counter() - batch_started)
            purged += counts.interactions
            if counts.interactions < batch:
                break
        count_started = time.perf_counter()
        with factory() as session:
            retention.report(session=session, settings=policy,
                             now=cutoff + timedelta(days=365))
        count_s = time.perf_counter() - count_started
    finally:
        engine.dispose()
    return purged, time.perf_counter() - started, 1000 * longest, 1000 * count_s


def run(backend: str, args: argparse.Namespace) -> Result:
    result = Result(backend)
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="medgo-bench-")))
        os.chmod(workdir, 0o755)  # the PostgreSQL server runs as `postgres`
        url = stack.enter_context(database(backend, workdir))
        settings = FeedbackSettings(database_url=url, service_tokens={"bench": TOKEN})
        env = {
            "MEDGO_FEEDBACK_DATABASE_URL": url,
            "MEDGO_FEEDBACK_SERVICE_TOKENS": f"bench={TOKEN}",
            "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the bench token is short
            # the ingest load writes as the gateway does
            "MEDGO_FEEDBACK_SERVICE_SCOPES": '{"bench": ["interactions:write", "ratings:write"]}',
        }
        upgrade_to_head(settings)
        if args.ingest_seconds > 0:
            workers = args.workers if backend == "postgresql" else 1
            serve_env = {**env, "MEDGO_FEEDBACK_WORKERS": str(workers)}
            with served_feedback(serve_env, workdir / "feedback.log") as (base, process):
                server = psutil.Process(process.pid)
                before = service_cpu_s(server)
                result.ingest_per_s, result.ingest_errors = asyncio.run(
                    ingest(base, args.clients, args.ingest_seconds)
                )
                cpu_s = service_cpu_s(server) - before
                acked = result.ingest_per_s * args.ingest_seconds
                result.server_cpu_ms = 1000 * cpu_s / max(acked, 1)
        if args.rows > 0:
            result.load_s = bulk_load(settings, args.rows)
            (result.export_rows, result.export_s, result.export_cpu_s,
             result.export_rss_mb) = export_dpo(env)
            (result.purged, result.purge_s, result.purge_longest_ms,
             result.purge_report_ms) = purge_older_half(settings, args.rows, args.purge_batch)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic ratings")
    parser.add_argument("--ingest-seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument(
        "--workers", type=int, default=1, help="service worker processes (PostgreSQL only)"
    )
    parser.add_argument("--purge-batch", type=int, default=1000,
                        help="interactions per purge transaction")
    args = parser.parse_args()
    print(f"cores={os.cpu_count()} loadavg(1,5,15)={os.getloadavg()} rows={args.rows} "
          f"clients={args.clients} ingest_seconds={args.ingest_seconds} "
          f"postgresql_workers={args.workers}")
    results = [run(backend, args) for backend in args.backends.split(",")]
    print(f"loadavg after={os.getloadavg()}")
    header = ("backend", "ingest ratings/s", "errors", "service CPU ms/rating", "bulk load s",
              "DPO rows", "export s", "export CPU s", "export peak RSS MB", "purged",
              "purge s", "purged/s", "longest purge batch ms", "report ms")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in results:
        print(f"| {r.backend} | {r.ingest_per_s:,.0f} | {r.ingest_errors} | "
              f"{r.server_cpu_ms:.2f} | {r.load_s:.1f} | "
              f"{r.export_rows:,} | {r.export_s:.1f} | {r.export_cpu_s:.1f} | "
              f"{r.export_rss_mb:.0f} | {r.purged:,} | {r.purge_s:.1f} | "
              f"{r.purged / max(r.purge_s, 1e-9):,.0f} | {r.purge_longest_ms:.0f} | "
              f"{r.purge_report_ms:.0f} |")


if __name__ == "__main__":
    main()
