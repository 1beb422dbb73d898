"""`medgo-inference` as operators run it: bad start-up conditions give one line, exit 2.

Each case runs the real console script in a subprocess and checks that it exits before
starting vLLM (nothing left running: `subprocess.run` returns only once it has exited).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

LAUNCHER = str(Path(sys.executable).with_name("medgo-inference"))


def launch(*args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_INFERENCE_")}
    env["MEDGO_INFERENCE_DEVICE"] = "cpu"  # no torch import: these cases never reach vLLM
    env |= {f"MEDGO_INFERENCE_{k.upper()}": v for k, v in settings.items()}
    return subprocess.run(
        [LAUNCHER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("medgo-inference: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


def test_missing_model_dir(tiny_model: Path) -> None:
    shutil.rmtree(tiny_model / "medgo-tiny" / "base")
    result = launch(manifest=str(tiny_model / "serving.json"))
    assert_one_line_error(
        result, f"base model directory {tiny_model / 'medgo-tiny' / 'base'} does not exist",
        "medgo-train build-tiny",
    )  # fmt: skip


def test_corrupt_config(tiny_model: Path) -> None:
    (tiny_model / "medgo-tiny" / "base" / "config.json").write_text('{"model_type": "qwen2"')
    result = launch(manifest=str(tiny_model / "serving.json"))
    assert_one_line_error(result, "config.json is not valid JSON")


def test_missing_adapter(tiny_model: Path) -> None:
    shutil.rmtree(tiny_model / "medgo-tiny" / "adapters" / "sft")
    result = launch(manifest=str(tiny_model / "serving.json"))
    assert_one_line_error(result, "adapter 'medgo-tiny-sft'", "does not exist")


def test_missing_manifest(tmp_path: Path) -> None:
    result = launch(manifest=str(tmp_path / "serving.json"))
    assert_one_line_error(result, "no checkpoint to serve", "MEDGO_INFERENCE_BASE_MODEL")


def test_bad_setting() -> None:
    result = launch(port="eighty")
    assert_one_line_error(result, "invalid setting MEDGO_INFERENCE_PORT")


def test_port_in_use(tiny_model: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = launch(manifest=str(tiny_model / "serving.json"), port=str(port))
    assert_one_line_error(
        result, f"cannot listen on 127.0.0.1:{port}", "MEDGO_INFERENCE_PORT"
    )


def test_dry_run_prints_the_vllm_command(tiny_model: Path) -> None:
    result = launch("--dry-run", manifest=str(tiny_model / "serving.json"))
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "VLLM_CPU_KVCACHE_SPACE=1" in line
    assert "-m vllm.entrypoints.openai.api_server --model " in line
    assert f"--lora-modules medgo-tiny-sft={tiny_model / 'medgo-tiny/adapters/sft'}" in line


def test_check_reports_not_ready() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, not listening: connections are refused
        result = launch("--check", port=str(port))
    assert result.returncode == 1
    assert result.stdout.startswith(f"not ready: http://127.0.0.1:{port} does not answer")


def test_status_without_a_launcher_is_not_in_sync() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    result = launch("--status", status_port=str(port))
    assert result.returncode == 1
    assert result.stdout.startswith("no status: the launcher does not answer")


def test_weak_api_key_refused_outside_local_mode(tmp_path: Path) -> None:
    """vLLM's key is judged before anything else is resolved; named, never echoed. In
    local mode the same key passes the check (the launch then fails on the missing
    manifest, later)."""
    key = "local-dev-inference-key"
    manifest = str(tmp_path / "serving.json")
    result = launch("--dry-run", manifest=manifest, api_key=key)
    assert_one_line_error(result, "MEDGO_INFERENCE_API_KEY is a development secret",
                          "MEDGO_INFERENCE_LOCAL_MODE=true")
    assert key not in result.stderr
    local = launch("--dry-run", manifest=manifest, api_key=key, local_mode="true")
    assert_one_line_error(local, "no checkpoint to serve")
