"""`scripts/local_stack.py` creates its secrets owner-only (0600) from the start."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

from medgo_common.supervise import free_port

ROOT = Path(__file__).resolve().parents[1]


def _local_stack(monkeypatch):
    """The script as a module (registered, as its dataclasses need)."""
    spec = importlib.util.spec_from_file_location("local_stack", ROOT / "scripts/local_stack.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "local_stack", module)
    spec.loader.exec_module(module)
    return module


def test_local_secrets_are_owner_only(tmp_path: Path, monkeypatch) -> None:
    local_stack = _local_stack(monkeypatch)
    monkeypatch.setattr(local_stack, "BIN", Path(sys.executable).parent)  # the venv's CLIs
    previous = os.umask(0o022)  # a usual umask, which would leave plain writes 0644
    try:
        sec = local_stack.ensure_secrets(tmp_path / "secrets")
    finally:
        os.umask(previous)
    for name in ("service-tokens.json", "demo-keys.json", "api-keys.json"):
        assert stat.S_IMODE((tmp_path / "secrets" / name).stat().st_mode) == 0o600, name
    tokens = json.loads((tmp_path / "secrets" / "service-tokens.json").read_text())
    assert sec["gateway_token"] == tokens["gateway"] and len(tokens["gateway"]) >= 32
    # The job API's caller is ops with its own token, never the gateway's (issue 18).
    assert sec["ops_token"] == tokens["ops"] and tokens["ops"] != tokens["gateway"]
    for name in ("GATEWAY", "INFERENCE", "FEEDBACK", "TRAINER"):  # the stack's own checks
        monkeypatch.setenv(f"MEDGO_{name}_PORT", str(free_port()))
    services = {svc.name: svc for svc in local_stack.build_services(tmp_path, sec)}
    assert services["trainer"].env["MEDGO_TRAINER_SERVICE_TOKENS"] == f"ops={tokens['ops']}"
