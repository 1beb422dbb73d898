"""`medgo-gateway` start-up: weak secrets are refused outside local mode (one line, exit 2).

Each of the gateway's secrets is judged by the shared rule (medgo_common.startup):
named by its variable, never echoed. In local mode the same value passes the check, and
the start then fails later on a missing TLS file, which proves the check let it by.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("medgo-gateway"))


def _start(tmp_path: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_GATEWAY_")}
    (tmp_path / "keys.json").write_text('{"keys": []}')
    env |= {"MEDGO_GATEWAY_TLS_CERTFILE": str(tmp_path / "nope.crt"),
            "MEDGO_GATEWAY_TLS_KEYFILE": str(tmp_path / "nope.key"),
            "MEDGO_GATEWAY_SPOOL_PATH": str(tmp_path / "spool.sqlite3"),
            "MEDGO_GATEWAY_API_KEYS_FILE": str(tmp_path / "keys.json")}
    env |= {f"MEDGO_GATEWAY_{k.upper()}": v for k, v in settings.items()}
    return subprocess.run([EXE], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("setting", "value", "reason"), [
    ("session_secret", "REPLACE_ME", "is a placeholder"),
    ("feedback_token", "gateway-test-token", "is shorter than 32 bytes"),
    ("inference_api_key", "local-dev-inference-key", "is a development secret"),
])
def test_a_weak_secret_is_refused_outside_local_mode(tmp_path, setting, value, reason):
    refused = _start(tmp_path, **{setting: value})
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"medgo-gateway: MEDGO_GATEWAY_{setting.upper()} {reason}")
    assert "MEDGO_GATEWAY_LOCAL_MODE=true" in refused.stderr and value not in refused.stderr
    assert not (tmp_path / "spool.sqlite3").exists()  # refused before anything was opened

    local = _start(tmp_path, **{setting: value, "local_mode": "true"})
    assert local.returncode == 2 and "TLS file" in local.stderr, local.stderr
