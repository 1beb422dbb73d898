"""The weekly loop's entry (deploy/k8s/components/feedback-loop/feedback-loop.sh) run for
real: the script execs `medgo-train loop --executor k8s` with last week as `--since`,
against the real feedback service (`medgo-feedback` on SQLite, a free port). With fewer
pairs than the CronJob's threshold it exits cleanly before anything is written or any
job is submitted (the kubeconfig points at a closed port, so any API call would fail
the run); a refused token fails it loudly. The loop's Kubernetes steps themselves are
tested in services/trainer/tests/test_executors.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from medgo_common.supervise import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "k8s" / "components" / "feedback-loop" / "feedback-loop.sh"
TRAINER_TOKEN = "trainer-loop-test-token"
KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: none, cluster: {server: "http://127.0.0.1:{port}"}}]
users: [{name: none, user: {token: unused}}]
contexts: [{name: none, context: {cluster: none, user: none, namespace: medgo}}]
current-context: none
"""


@pytest.fixture()
def feedback_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "MEDGO_FEEDBACK_HOST": "127.0.0.1",
        "MEDGO_FEEDBACK_PORT": str(port),
        "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "MEDGO_FEEDBACK_SERVICE_TOKENS": f"trainer={TRAINER_TOKEN}",
        "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the test token is short
        # the test seeds ratings with the one token the export script then reads with
        "MEDGO_FEEDBACK_SERVICE_SCOPES": '{"trainer": ["*"]}',
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


def _rate_with_correction(url: str, n: int, days_ago: int = 0) -> None:
    auth = {"Authorization": f"Bearer {TRAINER_TOKEN}"}
    created = datetime.now(UTC) - timedelta(days=days_ago)
    for i in range(n):
        record = {
            "id": str(uuid.uuid4()),
            "created_at": created.isoformat(),
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


def _run_script(feedback_url: str, token: str, tmp_path: Path) -> subprocess.CompletedProcess:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.replace("{port}", str(free_port())), encoding="utf-8")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # medgo-train
        "KUBECONFIG": str(kubeconfig),
        "MEDGO_TRAINER_MODEL_DIR": str(tmp_path / "models"),
        "MEDGO_TRAINER_FEEDBACK_URL": feedback_url,
        "MEDGO_TRAINER_FEEDBACK_TOKEN": token,
    }
    return subprocess.run(
        ["sh", str(SCRIPT), "--recipe", "medgo-72b-dpo", "--id-prefix", "medgo-72b",
         "--min-pairs", "10", "--skip-if-few-pairs"],
        env=env, capture_output=True, text=True, timeout=300,
    )


def test_a_quiet_window_exports_the_last_four_weeks_pairs_and_stops_cleanly(
    feedback_url: str, tmp_path: Path
) -> None:
    _rate_with_correction(feedback_url, 2, days_ago=30)  # before the 28-day window
    _rate_with_correction(feedback_url, 1, days_ago=10)  # an earlier week, replayed
    _rate_with_correction(feedback_url, 2)
    proc = _run_script(feedback_url, TRAINER_TOKEN, tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    result = json.loads("\n".join(lines[lines.index("{"):]))
    assert result == {"skipped": "only 3 DPO pairs in the export, fewer than --min-pairs 10",
                      "pairs": 3}
    assert "nothing to train this time" in proc.stderr
    assert not (tmp_path / "models").exists()  # no export kept, no registry, no checkpoint


def test_the_loop_fails_loudly_when_feedback_refuses_its_token(
    feedback_url: str, tmp_path: Path
) -> None:
    proc = _run_script(feedback_url, "wrong-token", tmp_path)
    assert proc.returncode == 2
    assert "medgo-train loop: feedback export refused (401)" in proc.stderr
    assert not (tmp_path / "models").exists()
