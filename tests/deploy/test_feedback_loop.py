"""The weekly loop's script (deploy/k8s/components/feedback-loop/feedback-loop.sh) run
for real against the real feedback service (`medgo-feedback` on SQLite, a free port):
it streams last week's DPO pairs into the export file with the trainer's token, and
with fewer pairs than its threshold stops before submitting any training job."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "k8s" / "components" / "feedback-loop" / "feedback-loop.sh"
TRAINER_TOKEN = "trainer-loop-test-token"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture()
def feedback_url(tmp_path: Path) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "MEDGO_FEEDBACK_HOST": "127.0.0.1",
        "MEDGO_FEEDBACK_PORT": str(port),
        "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "MEDGO_FEEDBACK_SERVICE_TOKENS": f"trainer={TRAINER_TOKEN}",
    }
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("medgo-feedback"))], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            if server.poll() is not None:
                pytest.fail(f"medgo-feedback exited: {server.stderr.read()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            pytest.fail("medgo-feedback did not become ready")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


def _rate_with_correction(url: str, n: int) -> None:
    auth = {"Authorization": f"Bearer {TRAINER_TOKEN}"}
    for i in range(n):
        record = {
            "id": str(uuid.uuid4()),
            "created_at": datetime.now(UTC).isoformat(),
            "user_id": "u-test",
            "checkpoint_id": "medgo-tiny-sft",
            "messages": [{"role": "user", "content": f"高血压患者第{i}个问题：饮食要注意什么？"}],
            "response": "多吃咸菜。",
            "latency_ms": 12.0,
        }
        assert httpx.post(f"{url}/v1/interactions", json=record, headers=auth).is_success
        rating = {
            "interaction_id": record["id"], "rater": "dr-test", "verdict": "unacceptable",
            "reasons": ["factual_error"], "corrected_answer": "应低盐饮食，每日食盐少于5克。",
        }
        assert httpx.post(f"{url}/v1/ratings", json=rating, headers=auth).is_success


def test_loop_exports_last_weeks_pairs_and_stops_below_threshold(
    feedback_url: str, tmp_path: Path
) -> None:
    _rate_with_correction(feedback_url, 3)
    data_root = tmp_path / "data"
    env = {
        # the script calls python3.11, as in the trainer image: put ours first on PATH
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MEDGO_TRAINER_FEEDBACK_URL": feedback_url,
        "MEDGO_TRAINER_FEEDBACK_TOKEN": TRAINER_TOKEN,
    }
    proc = subprocess.run(
        ["sh", str(SCRIPT), "10", str(data_root)], env=env, capture_output=True, text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "3 DPO pairs" in proc.stdout
    assert "no training run this week" in proc.stdout
    (export,) = data_root.glob("exports/*/dpo.jsonl")
    rows = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 3
    assert {json.dumps(row["chosen"], ensure_ascii=False) for row in rows} == {
        json.dumps(rows[0]["chosen"], ensure_ascii=False)
    }
    assert "应低盐饮食" in json.dumps(rows[0]["chosen"], ensure_ascii=False)
    assert "多吃咸菜" in json.dumps(rows[0]["rejected"], ensure_ascii=False)
    assert not list(data_root.glob("exports/*/*.part"))


def test_loop_fails_loudly_when_feedback_refuses_its_token(
    feedback_url: str, tmp_path: Path
) -> None:
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MEDGO_TRAINER_FEEDBACK_URL": feedback_url,
        "MEDGO_TRAINER_FEEDBACK_TOKEN": "wrong-token",
    }
    proc = subprocess.run(
        ["sh", str(SCRIPT), "10", str(tmp_path / "data")], env=env, capture_output=True,
        text=True, timeout=120,
    )
    assert proc.returncode != 0
    assert "401" in proc.stderr
    assert not list((tmp_path / "data").glob("exports/*/dpo.jsonl"))
