"""kill -9 the real service in the middle of a stream of rating writes.

Every rating that was answered 2xx before the kill must be in the database
afterwards, with the verdict that was acknowledged — on SQLite (WAL,
synchronous=FULL) and on PostgreSQL.
"""

from __future__ import annotations

import threading
import uuid

import httpx
from medgo_feedback.models import Rating
from medgo_testing.services import served_feedback
from sqlalchemy import select

WRITERS = 4
KILL_AFTER_ACKS = 60


def test_acknowledged_ratings_survive_kill_9(
    service_env, gateway_auth, session, make_record, make_rating, tmp_path
) -> None:
    acked: list[tuple[uuid.UUID, str, str]] = []
    lock = threading.Lock()
    enough = threading.Event()
    with served_feedback(service_env, tmp_path / "feedback.log") as (base, process):
        records = [make_record() for _ in range(10)]
        created = httpx.post(
            f"{base}/v1/interactions", json={"records": records}, headers=gateway_auth
        )
        assert created.status_code == 201

        def write(writer: int) -> None:
            with httpx.Client(base_url=base, headers=gateway_auth, timeout=10) as http:
                for n in range(100_000):
                    target = records[n % len(records)]["id"]
                    verdict = "acceptable" if n % 3 else "unacceptable"
                    body = make_rating(target, rater=f"dr-{writer}-{n}", verdict=verdict)
                    try:
                        answer = http.post("/v1/ratings", json=body)
                    except httpx.TransportError:
                        return  # the service is gone
                    if answer.is_success:
                        with lock:
                            acked.append((uuid.UUID(target), body["rater"], verdict))
                            if len(acked) >= KILL_AFTER_ACKS:
                                enough.set()

        threads = [threading.Thread(target=write, args=(i,)) for i in range(WRITERS)]
        for thread in threads:
            thread.start()
        assert enough.wait(timeout=120), "the service acknowledged too few ratings"
        process.kill()
        process.wait()
        for thread in threads:
            thread.join(timeout=30)
    stored = {
        (row.interaction_id, row.rater): row.verdict
        for row in session.execute(select(Rating.interaction_id, Rating.rater, Rating.verdict))
    }
    missing = [ack for ack in acked if stored.get(ack[:2]) != ack[2]]
    assert len(acked) >= KILL_AFTER_ACKS
    assert missing == []
