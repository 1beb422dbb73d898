"""The feedback loop end to end on medgo-tiny: ratings → DPO → eval → gated promote → served.

Real services throughout: `medgo-feedback` (temp SQLite) seeded through its API with
clinicians' corrections, `medgo-train loop` training a real DPO adapter and evaluating
it on a temporary real vLLM, then inference restarted through our launcher on the new
manifest and a chat through the real `medgo-gateway`. The model directory is a copy of
medgo-tiny in a temp dir, so the repository's var/models is never touched.

The gate uses a permissive policy: medgo-tiny's scores are noise, so a real policy
would pass or fail by chance. The test still checks that the gate runs on two real
reports and that a failing gate changes neither the manifest nor the registry.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_common.supervise import free_port, launched_process, launched_server, wait_http_ok
from medgo_trainer.cli import main as train
from medgo_trainer.training.registry import Registry, Status

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BIN = Path(sys.executable).parent
BOOT_TIMEOUT_S = 90
VLLM_BOOT_TIMEOUT_S = 420
GATEWAY_TOKEN, TRAINER_TOKEN = "loop-gateway-token", "loop-trainer-token"
PAIRS = 6
PERMISSIVE_POLICY = """\
# Test only: medgo-tiny's scores are noise, so no drop can fail this gate.
margin_points: 100
min_n: 1
"""
QUESTIONS = ["高血压患者可以服用布洛芬吗？", "反复胸闷两周需要做哪些检查？",
             "糖尿病患者空腹血糖目标是多少？", "儿童发热何时需要就医？",
             "服用华法林需要注意什么？", "慢性咳嗽的常见原因有哪些？"]


def _server(cmd: list[str], env: dict[str, str], ready_url: str, log: Path):
    """A console script until the block ends; fails with its log if it never gets ready."""
    ready = functools.partial(wait_http_ok, ready_url, BOOT_TIMEOUT_S)
    return launched_process(cmd, os.environ | env, log, ready)


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{free_port()}"
    env = {
        "MEDGO_FEEDBACK_PORT": url.rsplit(":", 1)[1],
        "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={GATEWAY_TOKEN},trainer={TRAINER_TOKEN}",
        "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the test tokens are short
    }
    with _server([str(BIN / "medgo-feedback")], env, url + "/readyz", tmp_path / "fb.log"):
        yield url


def _seed_corrections(feedback: str) -> None:
    """Rated chats of medgo-tiny-sft, each with a clinician's corrected answer."""
    auth = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}
    ids = [str(uuid.uuid4()) for _ in QUESTIONS]
    records = [{
        "id": i, "created_at": datetime.now(UTC).isoformat(), "user_id": "dr-loop",
        "checkpoint_id": "medgo-tiny-sft", "adapter": "medgo-tiny-sft",
        "messages": [{"role": "user", "content": q}], "response": "不清楚。",
        "finish_reason": "stop", "latency_ms": 100.0,
    } for i, q in zip(ids, QUESTIONS, strict=True)]
    r = httpx.post(f"{feedback}/v1/interactions", json={"records": records}, headers=auth)
    assert r.status_code == 201, r.text
    for i, q in zip(ids, QUESTIONS, strict=True):
        rating = {"interaction_id": i, "rater": "dr-0042", "verdict": "unacceptable",
                  "reasons": ["incomplete"], "corrected_answer": f"关于“{q}”，请结合病史就诊评估。"}
        r = httpx.post(f"{feedback}/v1/ratings", json=rating, headers=auth)
        assert r.status_code == 201, r.text


def test_ratings_become_the_served_checkpoint(
    feedback: str, model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="medgo_trainer.training.loop")
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_URL", feedback)
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_TOKEN", TRAINER_TOKEN)
    manifest = model_dir / "serving.json"
    _seed_corrections(feedback)

    # Too few pairs: refused before anything is written.
    assert train(["loop", "--min-pairs", str(PAIRS + 1), "--no-progress"]) == 2
    assert f"only {PAIRS} DPO pairs" in capsys.readouterr().err
    assert not (model_dir / "registry.sqlite3").exists()

    policy = tmp_path / "permissive.yaml"
    policy.write_text(PERMISSIVE_POLICY, encoding="utf-8")
    rc = train(["loop", "--min-pairs", str(PAIRS), "--set", "trl.max_steps=2",
                "--tasks", "safety,mcq-cmexam", "--limit", "2",
                "--max-tokens", "8", "--policy", str(policy), "--no-progress"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    steps = [m.split("]")[0] for m in caplog.messages if m.startswith("loop [")]
    assert steps == [f"loop [{n}/6" for n in range(1, 7)], caplog.messages
    lines = out.splitlines()  # DeepSpeed may print a warning to stdout first
    result = json.loads("\n".join(lines[lines.index("{"):]))
    new_id = result["promoted"]
    assert new_id.startswith("medgo-tiny-dpo-") and new_id != "medgo-tiny-sft"
    assert result["pairs"] == PAIRS
    # SFT 8 + DPO 8 = 16 fits medgo-tiny's max_serving_rank: concatenated exactly.
    assert result["metrics"]["serving_rank"] == 16
    assert "serving_exact_rank" not in result["metrics"]

    registry = Registry(model_dir)
    assert ServingManifest.load(manifest).checkpoint_id == new_id
    new, old = registry.get(new_id), registry.get("medgo-tiny-sft")
    assert (new.status, old.status) == (Status.promoted, Status.retired)
    assert (new.parent, new.stage) == ("medgo-tiny-sft", "dpo")
    assert new.data_sha256.startswith(new_id.rsplit("-", 1)[1])
    assert Path(result["reports"]["candidate"]).is_file()

    # A failing gate (here: the retired checkpoint has no evaluation report of its
    # own) changes nothing: same manifest bytes, same statuses.
    before = manifest.read_bytes()
    assert train(["promote", "medgo-tiny-sft"]) == 2
    assert "failed the evaluation gate" in capsys.readouterr().err
    assert manifest.read_bytes() == before
    assert registry.promoted().id == new_id

    # Inference restarted on the new manifest; a chat through the gateway names it.
    keys = tmp_path / "api_keys.json"
    key = subprocess.run(
        [str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys), "--name", "dr-loop",
         "--role", "clinician", "--department", "心内科"],
        capture_output=True, text=True, check=True).stdout.strip()
    with launched_server({"MEDGO_INFERENCE_MANIFEST": str(manifest)},
                         tmp_path / "vllm.log", VLLM_BOOT_TIMEOUT_S) as inference:
        gateway = f"http://127.0.0.1:{free_port()}"
        env = {"MEDGO_GATEWAY_PORT": gateway.rsplit(":", 1)[1],
               "MEDGO_GATEWAY_INFERENCE_URL": inference, "MEDGO_GATEWAY_FEEDBACK_URL": feedback,
               "MEDGO_GATEWAY_FEEDBACK_TOKEN": GATEWAY_TOKEN,
               "MEDGO_GATEWAY_LOCAL_MODE": "true",  # the test token is short
               "MEDGO_GATEWAY_API_KEYS_FILE": str(keys),
               "MEDGO_GATEWAY_SPOOL_PATH": str(tmp_path / "spool.sqlite3")}
        with _server([str(BIN / "medgo-gateway")], env, gateway + "/readyz",
                     tmp_path / "gw.log"):
            r = httpx.post(f"{gateway}/v1/chat/completions", timeout=60,
                           headers={"Authorization": f"Bearer {key}"},
                           json={"model": "medgo", "max_tokens": 8,
                                 "messages": [{"role": "user", "content": QUESTIONS[0]}]})
    assert r.status_code == 200, r.text
    assert r.headers["x-medgo-checkpoint"] == new_id
