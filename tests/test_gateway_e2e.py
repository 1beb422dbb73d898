"""End to end, as deployed: OpenAI SDK → `medgo-gateway` → real vLLM (medgo-tiny) →
`medgo-feedback`, and a clinician's correction comes out of the DPO export.

Every server is the real console script in its own process, configured only through
its environment; the API key is created with the real `medgo-gateway keys add` CLI,
as the local-mode launcher does.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from medgo_common.phi import redact
from medgo_common.supervise import launched_process, wait_http_ok

# A chat on CPU vLLM can take seconds under load: httpx's 5 s default is too tight.
MODEL_TIMEOUT_S = 60


BIN = Path(sys.executable).parent
BOOT_TIMEOUT_S = 90
GATEWAY_TOKEN, TRAINER_TOKEN = "e2e-gateway-token", "e2e-trainer-token"
PROMPT = "患者王五，电话13700001234，反复胸闷两周，需要做哪些检查？"
CORRECTION = "建议完善心电图、心肌酶谱和冠脉CTA检查，必要时行冠脉造影。"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(cmd: str, env: dict[str, str], ready_url: str, log: Path):
    """A console script until the block ends; fails with its log if it never gets ready."""
    ready = functools.partial(wait_http_ok, ready_url, BOOT_TIMEOUT_S)
    return launched_process([str(BIN / cmd)], os.environ | env, log, ready)


@pytest.fixture
def stack(tmp_path: Path, vllm_server: str) -> Iterator[dict[str, str]]:
    feedback_url = f"http://127.0.0.1:{_free_port()}"
    feedback_env = {
        "MEDGO_FEEDBACK_PORT": feedback_url.rsplit(":", 1)[1],
        "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={GATEWAY_TOKEN},trainer={TRAINER_TOKEN}",
    }
    keys_file = tmp_path / "api_keys.json"
    key = subprocess.run(
        [str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys_file),
         "--name", "dr-e2e", "--role", "clinician", "--department", "心内科"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    gateway_url = f"http://127.0.0.1:{_free_port()}"
    gateway_env = {
        "MEDGO_GATEWAY_PORT": gateway_url.rsplit(":", 1)[1],
        "MEDGO_GATEWAY_INFERENCE_URL": vllm_server,
        "MEDGO_GATEWAY_FEEDBACK_URL": feedback_url,
        "MEDGO_GATEWAY_FEEDBACK_TOKEN": GATEWAY_TOKEN,
        "MEDGO_GATEWAY_API_KEYS_FILE": str(keys_file),
        "MEDGO_GATEWAY_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
    }
    with (
        _server("medgo-feedback", feedback_env, feedback_url + "/readyz", tmp_path / "fb.log"),
        _server("medgo-gateway", gateway_env, gateway_url + "/readyz", tmp_path / "gw.log"),
    ):
        yield {"gateway": gateway_url, "feedback": feedback_url, "key": key}


def test_chat_rate_and_export(stack: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=stack["gateway"] + "/v1", api_key=stack["key"])
    assert [m.id for m in client.models.list()] == ["medgo"]

    raw = client.chat.completions.with_raw_response.create(
        model="medgo",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=8,
        stream=True,
    )
    interaction_id = raw.headers["x-medgo-interaction-id"]
    assert raw.headers["x-medgo-checkpoint"] == "medgo-tiny-sft"
    answer = "".join(chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices)

    rating = {
        "interaction_id": interaction_id,
        "verdict": "unacceptable",
        "reasons": ["incomplete"],
        "corrected_answer": CORRECTION,
    }
    auth = {"Authorization": f"Bearer {stack['key']}"}
    r = httpx.post(
        timeout=MODEL_TIMEOUT_S, url=stack["gateway"] + "/v1/feedback", json=rating, headers=auth
    )
    # 201: stored at once; 202: queued behind the interaction record, which the gateway
    # delivers asynchronously. Either way the export below must show it.
    assert r.status_code in (201, 202), r.text

    trainer = {"Authorization": f"Bearer {TRAINER_TOKEN}"}
    deadline = time.monotonic() + 30
    while True:
        export = httpx.get(
            timeout=MODEL_TIMEOUT_S, url=stack["feedback"] + "/v1/exports/dpo", headers=trainer
        )
        rows = [json.loads(line) for line in export.text.splitlines() if line]
        if rows or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert rows == [
        {
            "prompt": [{"role": "user", "content": redact(PROMPT).text}],
            "chosen": [{"role": "assistant", "content": CORRECTION}],
            "rejected": [{"role": "assistant", "content": redact(answer).text}],
        }
    ]
    assert "13700001234" not in export.text and "王五" not in export.text
