"""Nothing lost across replicas and rollouts: the recorder against the real feedback app.

Two gateway replicas are two `Recorder`s with their own spool files; the feedback
service is the real app (SQLite, migrated) under uvicorn in this process. A rating
that reaches feedback before its interaction record (still in the other replica's
spool) is retried until the record arrives; `stop()` drains the spool to feedback.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import httpx
import pytest
import uvicorn
from medgo_common.schemas.feedback import InteractionRecord, RatingIn
from medgo_feedback.app import create_app as create_feedback_app
from medgo_feedback.db import upgrade_to_head
from medgo_feedback.settings import FeedbackSettings
from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.recorder import INTERACTION, Recorder
from medgo_gateway.spool import Spool, SpoolFullError
from prometheus_client import CollectorRegistry

from .conftest import FEEDBACK_TOKEN, GatewayProcess, wait_until

TOKEN = "gw-spool-token"


@contextlib.contextmanager
def _serving(app) -> Iterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 60, "the feedback app to start")
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


@pytest.fixture
def feedback_app(tmp_path: Path) -> Iterator[str]:
    settings = FeedbackSettings(
        database_url=f"sqlite:///{tmp_path / 'feedback.db'}",
        service_tokens={"gateway": TOKEN},
        # the tests read back what the gateway wrote with the same token
        service_scopes={"gateway": ["interactions:write", "ratings:write", "interactions:read"]},
    )
    upgrade_to_head(settings)
    with _serving(create_feedback_app(settings)) as url:
        yield url


def _record() -> dict:
    return {
        "id": str(uuid.uuid4()), "created_at": datetime.now(UTC).isoformat(),
        "user_id": "u_0123456789abcdef", "department": "心内科",
        "checkpoint_id": "medgo-tiny-sft", "adapter": "medgo-tiny-sft",
        "messages": [{"role": "user", "content": "高血压患者可以服用布洛芬吗？"}],
        "response": "应在医生指导下短期使用。", "finish_reason": "stop", "latency_ms": 800.0,
        "prompt_tokens": 12, "completion_tokens": 9,
    }


def _rating(interaction_id: str) -> RatingIn:
    return RatingIn(interaction_id=uuid.UUID(interaction_id), rater="u_0123456789abcdef",
                    verdict="acceptable", idempotency_key=uuid.uuid4().hex)


def _queued_rating(gateway, keys, verdict: str) -> dict:
    """A clinician rates a new interaction through `gateway` while feedback is down
    (202 queued); returns the interaction's record, which feedback has not seen."""
    record = _record() | {"user_id": keys.clinician_id}
    rating = {"interaction_id": record["id"], "verdict": verdict}
    r = httpx.post(gateway.url + "/v1/feedback", json=rating, headers=keys.auth("clinician"),
                   timeout=30)
    assert (r.status_code, r.json()["status"]) == (202, "queued")
    return record


def _recorder(client: aiohttp.ClientSession, url: str, spool: Spool, **kw) -> Recorder:
    return Recorder(client=client, feedback_url=url, token=TOKEN, spool=spool,
                    metrics=GatewayMetrics(CollectorRegistry()),
                    retry_interval_s=kw.pop("retry_interval_s", 0.05), **kw)


def _rows(spool_path: Path) -> list[tuple[str, str | None]]:
    with contextlib.closing(sqlite3.connect(spool_path)) as db:
        return db.execute("SELECT kind, rejected FROM spool").fetchall()


def _interaction(url: str, interaction_id: str) -> dict:
    r = httpx.get(f"{url}/v1/interactions/{interaction_id}",
                  headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    return r.json() if r.status_code == 200 else {}


def test_a_rating_waits_for_its_record_in_another_replicas_spool(feedback_app, tmp_path):
    record = _record()
    spool_a = Spool(tmp_path / "a.sqlite3")
    spool_b = Spool(tmp_path / "b.sqlite3")
    spool_a.put(INTERACTION, record["id"], record)  # replica A has not delivered it yet

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            b = _recorder(client, feedback_app, spool_b)
            await b.start()
            status, body = await b.rate(_rating(record["id"]))  # feedback: 404 for now
            assert (status, body["status"]) == (202, "queued")
            await asyncio.sleep(0.3)  # B retries meanwhile: still waiting, not refused
            assert _rows(spool_b.path) == [("rating", None)]
            a = _recorder(client, feedback_app, spool_a)
            await a.start()  # A delivers the record; B's next retry lands
            for _ in range(200):
                if spool_a.depth() == 0 and spool_b.depth() == 0:
                    break
                await asyncio.sleep(0.05)
            await a.stop()
            await b.stop()

    asyncio.run(scenario())
    assert _rows(spool_a.path) == [] and _rows(spool_b.path) == []
    ratings = _interaction(feedback_app, record["id"]).get("ratings", [])
    assert [r["verdict"] for r in ratings] == ["acceptable"]


def test_a_rating_without_a_record_is_set_aside_after_its_window(feedback_app, tmp_path):
    spool = Spool(tmp_path / "b.sqlite3")
    orphan = str(uuid.uuid4())

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            b = _recorder(client, feedback_app, spool, rating_retry_window_s=0.5)
            await b.start()
            assert (await b.rate(_rating(orphan)))[0] == 202
            for _ in range(200):
                if spool.depth() == 0:
                    break
                await asyncio.sleep(0.05)
            await b.stop()

    asyncio.run(scenario())
    [(kind, rejected)] = _rows(spool.path)
    assert kind == "rating" and rejected.startswith("404")


def test_each_record_goes_out_at_once_whatever_the_retry_interval(feedback_app, tmp_path):
    """After a delivery the loop waits for the next record instead of re-reading the
    spool: a record spooled later must wake it, not wait out the 10-minute interval."""
    spool = Spool(tmp_path / "gw.sqlite3")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            recorder = _recorder(client, feedback_app, spool, retry_interval_s=600)
            await recorder.start()
            for n in range(3):
                record = InteractionRecord.model_validate(_record())
                recorder.submit(lambda r=record: r)
                await asyncio.to_thread(  # fails the test after 10 s
                    wait_until, lambda r=record: _interaction(feedback_app, str(r.id)), 10,
                    f"record {n + 1} of 3 at feedback", 0.05)
            await recorder.stop()

    asyncio.run(scenario())
    assert spool.depth() == 0


class _WriteCountingSpool(Spool):
    """A real spool that also notes the size of each write (one transaction each)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.writes: list[int] = []

    def put_many(self, kind: str, items: list[tuple[str, dict]]) -> int:
        self.writes.append(len(items))
        return super().put_many(kind, items)


@pytest.mark.parametrize(("pending", "writes"), [(True, [2]), (False, [1, 1])])
def test_records_share_a_write_only_while_other_answers_are_on_their_way(
    tmp_path, pending, writes
):
    """A second answer 1 ms after the first joins its write while requests are in
    flight; with none in flight the first is written at once, alone."""
    spool = _WriteCountingSpool(tmp_path / "gw.sqlite3")

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            recorder = _recorder(client, "http://127.0.0.1:9", spool,
                                 answers_pending=lambda: pending)
            await recorder.start()
            for _ in range(2):
                record = InteractionRecord.model_validate(_record())
                recorder.submit(lambda r=record: r)
                await asyncio.sleep(0.001)
            await recorder.stop()

    asyncio.run(scenario())
    assert spool.writes == writes and spool.depth() == 2


def test_stop_drains_the_spool_to_feedback(feedback_app, tmp_path):
    spool = Spool(tmp_path / "gw.sqlite3")
    records = [_record() for _ in range(3)]
    spool.put_many(INTERACTION, [(r["id"], r) for r in records])

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            # Never started: only the shutdown drain can deliver the backlog.
            await _recorder(client, feedback_app, spool).stop()

    asyncio.run(scenario())
    assert spool.depth() == 0 and spool.bytes == 0
    assert all(_interaction(feedback_app, r["id"]).get("id") == r["id"] for r in records)


def test_stop_keeps_the_spool_when_feedback_is_down(tmp_path):
    spool = Spool(tmp_path / "gw.sqlite3")
    record = _record()
    spool.put(INTERACTION, record["id"], record)

    async def scenario() -> None:
        async with aiohttp.ClientSession() as client:
            dead = "http://127.0.0.1:9"
            await _recorder(client, dead, spool, drain_timeout_s=5).stop()

    asyncio.run(scenario())
    assert spool.depth() == 1  # still on disk for the next start on this file
    spool.close()
    assert Spool(tmp_path / "gw.sqlite3").head(10)[0].key == record["id"]


def test_an_acknowledgement_leaves_new_items_fsynced(tmp_path):
    """Acks commit without their own fsync; the items written after them must not."""
    spool = Spool(tmp_path / "gw.sqlite3")
    records = [_record() for _ in range(3)]
    spool.put_many(INTERACTION, [(r["id"], r) for r in records])
    spool.ack([item.seq for item in spool.head(2)])
    assert spool._db.execute("PRAGMA synchronous").fetchone() == (2,)  # FULL
    assert [item.key for item in spool.head(10)] == [records[2]["id"]]
    spool.close()
    assert [item.key for item in Spool(tmp_path / "gw.sqlite3").head(10)] == [records[2]["id"]]


def test_the_spool_is_bounded_and_measured(tmp_path):
    record = _record()
    spool = Spool(tmp_path / "gw.sqlite3", max_bytes=1500)
    spool.put(INTERACTION, record["id"], record)
    held = spool.bytes
    assert held > 0 and spool.oldest_age() >= 0.0 and spool.depth() == 1
    with pytest.raises(SpoolFullError):
        spool.put_many(INTERACTION, [(str(uuid.uuid4()), record) for _ in range(3)])
    assert spool.depth() == 1 and spool.bytes == held  # all or nothing
    spool.ack([spool.head(1)[0].seq])
    assert spool.bytes == 0 and spool.oldest_age() == 0.0
    reopened = Spool(tmp_path / "gw.sqlite3", max_bytes=1500)
    assert reopened.bytes == 0


def gateway_spool(gateway: GatewayProcess) -> Path:
    return Path(gateway.env["MEDGO_GATEWAY_SPOOL_PATH"])


def test_a_terminated_gateway_hands_its_spool_to_feedback(feedback, gateway_process, keys):
    """A rollout deletes the pod: SIGTERM, and the spool is delivered before the exit."""
    gateway = gateway_process(feedback_url=feedback.url, replay_interval_s="600")
    gateway.start()
    record = _queued_rating(gateway, keys, "unacceptable")
    feedback.start()
    r = httpx.post(feedback.url + "/v1/interactions", json=record, timeout=10,
                   headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"})
    assert r.status_code == 201, r.text
    # The gateway would retry only in 10 minutes: only the shutdown drain delivers it.
    os.killpg(gateway.proc.pid, signal.SIGTERM)
    gateway.proc.wait(timeout=60)  # uvicorn re-raises SIGTERM after its graceful shutdown
    gateway.proc = None
    assert "spool drained to the feedback service" in gateway.log.read_text()
    stored = feedback.get(f"/v1/interactions/{record['id']}").json()
    assert [x["verdict"] for x in stored["ratings"]] == ["unacceptable"]
    assert _rows(gateway_spool(gateway)) == []


def test_a_killed_gateways_spool_is_delivered_by_the_next_process(feedback, gateway_process,
                                                                  keys):
    """A pod killed outright (SIGKILL: OOM, node loss, a grace period run out) while
    feedback is down: the next process on the same spool file - in Kubernetes the
    StatefulSet's next pod on the same claim - delivers the rating it acknowledged."""
    gateway = gateway_process(feedback_url=feedback.url)
    gateway.start()
    record = _queued_rating(gateway, keys, "acceptable")
    gateway.kill()  # nothing runs on the way out
    assert [kind for kind, _ in _rows(gateway_spool(gateway))] == ["rating"]

    feedback.start()
    r = httpx.post(feedback.url + "/v1/interactions", json=record, timeout=10,
                   headers={"Authorization": f"Bearer {FEEDBACK_TOKEN}"})
    assert r.status_code == 201, r.text
    gateway.start()  # same MEDGO_GATEWAY_SPOOL_PATH
    wait_until(lambda: feedback.get(f"/v1/interactions/{record['id']}").json()["ratings"],
               60, "the rating left by the killed process to be delivered")
    stored = feedback.get(f"/v1/interactions/{record['id']}").json()
    assert [x["verdict"] for x in stored["ratings"]] == ["acceptable"]
    wait_until(lambda: _rows(gateway_spool(gateway)) == [], 30, "the spool to be emptied")
