"""`MEDGO_FEEDBACK_WORKERS`: several uvicorn worker processes on PostgreSQL only."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import psutil
from medgo_feedback.models import Rating
from medgo_testing.services import served_feedback
from sqlalchemy import func, select


def test_workers_serve_ratings_on_postgresql_and_are_refused_on_sqlite(
    backend, service_env, gateway_auth, session, make_record, make_rating, tmp_path
) -> None:
    env = {**service_env, "MEDGO_FEEDBACK_WORKERS": "2"}
    if backend == "sqlite":
        result = subprocess.run(
            [sys.executable, "-m", "medgo_feedback"],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2
        assert result.stderr.strip().splitlines() == [
            "medgo-feedback: MEDGO_FEEDBACK_WORKERS > 1 needs PostgreSQL (SQLite has one "
            "writer); set it to 1 or point MEDGO_FEEDBACK_DATABASE_URL at PostgreSQL"
        ]
        return
    with served_feedback(env, tmp_path / "feedback.log") as (base, process):
        # Besides the workers, multiprocessing starts its resource tracker.
        children = psutil.Process(process.pid).children()
        workers = [child for child in children if "spawn_main" in " ".join(child.cmdline())]
        assert len(workers) == 2
        record = make_record()
        with httpx.Client(base_url=base, headers=gateway_auth, timeout=10) as http:
            assert http.post("/v1/interactions", json=record).status_code == 201
            for n in range(20):
                answer = http.post("/v1/ratings", json=make_rating(record["id"], rater=f"dr{n}"))
                assert answer.status_code == 201, answer.text
    assert session.scalar(select(func.count()).select_from(Rating)) == 20
    assert not any(worker.is_running() for worker in workers)

