"""Cross-service fixtures: the deployed stack as real console-script processes.

`launch_stack(tmp_path, inference_url, ...)` starts `medgo-feedback` (SQLite) and
`medgo-gateway` in front of any inference URL, configured only through their
environment, with a clinician key made by the real `medgo-gateway keys add` CLI, as
the local-mode launcher does. `stack` is that in front of the session's real vLLM.
`model_dir` is a temporary copy of medgo-tiny laid out as `build-tiny` leaves
var/models, for tests that run the feedback loop on it (`model_dir_factory` makes one
for a module-scoped fixture). The factories are session-scoped so that module-scoped
fixtures can use them.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_common.supervise import free_port, launched_process, wait_http_ok

BIN = Path(sys.executable).parent
BOOT_TIMEOUT_S = 90
GATEWAY_TOKEN, TRAINER_TOKEN = "e2e-gateway-token", "e2e-trainer-token"


def _server(cmd: str, env: dict[str, str], ready_url: str, log: Path):
    """A console script until the block ends; fails with its log if it never gets ready."""
    ready = functools.partial(wait_http_ok, ready_url, BOOT_TIMEOUT_S)
    return launched_process([str(BIN / cmd)], os.environ | env, log, ready)


def add_key(keys_file: Path, name: str, *extra: str) -> str:
    """A clinician key through the real CLI; returns the clear key it prints once."""
    return subprocess.run(
        [str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys_file),
         "--name", name, "--role", "clinician", "--department", "心内科", *extra],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


@dataclass(frozen=True)
class Stack:
    gateway: str
    feedback: str
    key: str
    keys_file: Path

    def feedback_get(self, path: str, **params: str) -> httpx.Response:
        """Read the feedback store as the trainer does (its service token)."""
        return httpx.get(self.feedback + path, params=params, timeout=60,
                         headers={"Authorization": f"Bearer {TRAINER_TOKEN}"})

    def dpo_export(self, timeout_s: float = 30, min_rows: int = 1) -> tuple[list[dict], str]:
        """The DPO export's rows and raw text, polled until it has `min_rows` rows or time
        is up.

        A rating may be answered 202 (queued behind its interaction record, which the
        gateway delivers asynchronously), so the export can lag the rating by a moment.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            text = self.feedback_get("/v1/exports/dpo").text
            rows = [json.loads(line) for line in text.splitlines() if line]
            if len(rows) >= min_rows or time.monotonic() > deadline:
                return rows, text
            time.sleep(0.2)


def gateway_env(
    state_dir: Path, inference_url: str, feedback_url: str, keys_file: Path, **settings: str
) -> tuple[str, dict[str, str]]:
    """(URL, environment) of a `medgo-gateway` with its spool in `state_dir`."""
    gateway_url = f"http://127.0.0.1:{free_port()}"
    return gateway_url, {
        "MEDGO_GATEWAY_PORT": gateway_url.rsplit(":", 1)[1],
        "MEDGO_GATEWAY_INFERENCE_URL": inference_url,
        "MEDGO_GATEWAY_FEEDBACK_URL": feedback_url,
        "MEDGO_GATEWAY_FEEDBACK_TOKEN": GATEWAY_TOKEN,
        "MEDGO_GATEWAY_LOCAL_MODE": "true",  # the test token is short
        "MEDGO_GATEWAY_API_KEYS_FILE": str(keys_file),
        "MEDGO_GATEWAY_SPOOL_PATH": str(state_dir / "spool.sqlite3"),
        **{f"MEDGO_GATEWAY_{name.upper()}": value for name, value in settings.items()},
    }


@contextlib.contextmanager
def launch_gateway(
    state_dir: Path, stack: Stack, inference_url: str, **settings: str
) -> Iterator[str]:
    """One more gateway replica of `stack` (same feedback store and keys); yields its URL."""
    state_dir.mkdir(parents=True, exist_ok=True)
    url, env = gateway_env(state_dir, inference_url, stack.feedback, stack.keys_file, **settings)
    with _server("medgo-gateway", env, url + "/readyz", state_dir / "gw.log"):
        yield url


@contextlib.contextmanager
def launch_stack(
    tmp_path: Path, inference_url: str, ready_path: str = "/readyz", **gateway_settings: str
) -> Iterator[Stack]:
    """Feedback + gateway in front of `inference_url`; extra `MEDGO_GATEWAY_*` settings.

    The gateway counts as started when `ready_path` answers 200: `/readyz` needs a live
    inference upstream, `/healthz` does not (for tests of a model that is down).
    """
    feedback_url = f"http://127.0.0.1:{free_port()}"
    feedback_env = {
        "MEDGO_FEEDBACK_PORT": feedback_url.rsplit(":", 1)[1],
        "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'feedback.db'}",
        "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={GATEWAY_TOKEN},trainer={TRAINER_TOKEN}",
        "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the test tokens are short
        # `feedback_get` also reads single records, which the default trainer cannot
        "MEDGO_FEEDBACK_SERVICE_SCOPES": json.dumps({
            "gateway": ["interactions:write", "ratings:write"],
            "trainer": ["exports:read", "stats:read", "interactions:read"],
        }),
    }
    keys_file = tmp_path / "api_keys.json"
    key = add_key(keys_file, "dr-e2e")
    gateway_url, env = gateway_env(tmp_path, inference_url, feedback_url, keys_file,
                                   **gateway_settings)
    with (
        _server("medgo-feedback", feedback_env, feedback_url + "/readyz", tmp_path / "fb.log"),
        _server("medgo-gateway", env, gateway_url + ready_path, tmp_path / "gw.log"),
    ):
        yield Stack(gateway_url, feedback_url, key, keys_file)


@pytest.fixture(scope="session")
def stack_factory():
    """`with stack_factory(tmp_path, inference_url, **gateway_settings) as stack:`."""
    return launch_stack


@pytest.fixture(scope="session")
def gateway_factory():
    """`with gateway_factory(state_dir, stack, inference_url, **settings) as url:`."""
    return launch_gateway


@pytest.fixture
def stack(tmp_path: Path, vllm_server: str) -> Iterator[Stack]:
    with launch_stack(tmp_path, vllm_server) as running:
        yield running


def copy_medgo_tiny(root: Path, medgo_tiny) -> Path:
    """A copy of medgo-tiny in `root` served as `medgo-tiny-sft`, as `build-tiny` leaves
    var/models: the loop promotes into it without touching the session's model."""
    base = shutil.copytree(medgo_tiny.base, root / "medgo-tiny" / "base")
    adapter = shutil.copytree(medgo_tiny.adapter, root / "medgo-tiny" / "adapters" / "sft")
    ServingManifest(checkpoint_id="medgo-tiny-sft", base_model=str(base), adapters=[
        {"name": "medgo-tiny-sft", "path": str(adapter)}]).save(root / "serving.json")
    return root


@pytest.fixture(scope="session")
def model_dir_factory(medgo_tiny):
    """`model_dir_factory(root)`: `copy_medgo_tiny` into `root` (a module fixture's)."""
    return functools.partial(copy_medgo_tiny, medgo_tiny=medgo_tiny)


@pytest.fixture
def model_dir(tmp_path: Path, medgo_tiny, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of medgo-tiny served as `medgo-tiny-sft`, as `build-tiny` leaves var/models."""
    root = copy_medgo_tiny(tmp_path / "models", medgo_tiny)
    monkeypatch.setenv("MEDGO_TRAINER_MODEL_DIR", str(root))
    return root
