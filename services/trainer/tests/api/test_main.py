"""`medgo-trainer-api` start-up: weak secrets refused outside local mode, one line, exit 2."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

STRONG = "Zq8WmV3rT1yPe6LuK0sXa9NdH4fJc7Gb2oRi5EtYwUk"  # 43 random characters


def _start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_TRAINER_")}
    return subprocess.run([sys.executable, "-m", "medgo_trainer.api"], env=clean | env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize(("setting", "value", "label", "reason"), [
    ("SERVICE_TOKENS", f"ops={STRONG},bench=local-dev-ops-token",
     "MEDGO_TRAINER_SERVICE_TOKENS (bench)", "is a development secret"),
    ("FEEDBACK_TOKEN", "REPLACE_ME", "MEDGO_TRAINER_FEEDBACK_TOKEN", "is a placeholder"),
    ("INFERENCE_API_KEY", "k3y-Xq9", "MEDGO_TRAINER_INFERENCE_API_KEY", "is shorter than 32"),
])
def test_a_weak_secret_is_refused_outside_local_mode(tmp_path: Path, setting, value, label,
                                                     reason) -> None:
    """Named by variable (and caller), never echoed; nothing created. In local mode the
    same value passes, and the start fails later on the taken port instead."""
    env = {"MEDGO_TRAINER_SERVICE_TOKENS": f"ops={STRONG}",
           "MEDGO_TRAINER_JOBS_DIR": str(tmp_path / "jobs"), f"MEDGO_TRAINER_{setting}": value}
    refused = _start(env)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert refused.stderr.startswith(f"medgo-trainer-api: {label} {reason}")
    assert "MEDGO_TRAINER_LOCAL_MODE=true" in refused.stderr
    assert value.rpartition("=")[2] not in refused.stderr
    assert not (tmp_path / "jobs").exists()

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        local = _start(env | {"MEDGO_TRAINER_LOCAL_MODE": "true", "MEDGO_TRAINER_PORT": port})
    assert local.returncode == 2 and f"cannot listen on 127.0.0.1:{port}" in local.stderr
