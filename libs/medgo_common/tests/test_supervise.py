"""The child-process supervisor behind the `vllm_server` fixture and the benchmark."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_common.supervise import ServerStartError, launched_server


def test_failed_start_reports_the_launcher_line(tmp_path: Path) -> None:
    settings = {
        "MEDGO_INFERENCE_MANIFEST": str(tmp_path / "missing.json"),
        "MEDGO_INFERENCE_DEVICE": "cpu",
    }
    with pytest.raises(ServerStartError) as info, launched_server(
        settings, tmp_path / "server.log", timeout_s=120
    ):
        pytest.fail("a server without a checkpoint must not become ready")
    message = str(info.value)
    assert "server process exited while starting" in message
    assert "medgo-inference: error: no checkpoint to serve" in message
