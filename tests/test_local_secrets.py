"""`scripts/local_stack.py` creates its secrets owner-only (0600) from the start."""

from __future__ import annotations

import importlib.util
import json
import os
import stat
import sys
from pathlib import Path

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
