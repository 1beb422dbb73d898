"""`medgo-feedback` start-up failures: one clear line on stderr, exit 2, no traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

from medgo_common.supervise import free_port


def _start(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_FEEDBACK_")}
    return subprocess.run(
        [sys.executable, "-m", "medgo_feedback"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _assert_one_line(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("medgo-feedback: ")
    for fragment in fragments:
        assert fragment in lines[0]


TOKENS = {"MEDGO_FEEDBACK_SERVICE_TOKENS": "gateway=abc", "MEDGO_FEEDBACK_LOCAL_MODE": "true"}
STRONG = "Zq8WmV3rT1yPe6LuK0sXa9NdH4fJc7Gb2oRi5EtYwUk"  # 43 random characters


def test_weak_token_refused_outside_local_mode(tmp_path) -> None:
    """Named by variable and caller, never echoed; the same token passes in local mode
    (the start then fails later, on the unreachable database, so the check passed).
    Each kind of weak secret: libs/medgo_common/tests/test_weak_secrets.py."""
    token = "local-dev-trainer-token"
    env = {"MEDGO_FEEDBACK_DATABASE_URL": f"postgresql://m@127.0.0.1:{free_port()}/f",
           "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={STRONG},trainer={token}"}
    result = _start(env)
    _assert_one_line(result, "MEDGO_FEEDBACK_SERVICE_TOKENS (trainer)", "development secret",
                     "MEDGO_FEEDBACK_LOCAL_MODE=true")
    assert token not in result.stderr
    local = _start({**env, "MEDGO_FEEDBACK_LOCAL_MODE": "true"})
    _assert_one_line(local, "cannot reach the feedback database")


def test_database_unreachable(tmp_path) -> None:
    url = f"postgresql://medgo:secret@127.0.0.1:{free_port()}/feedback"
    result = _start({**TOKENS, "MEDGO_FEEDBACK_DATABASE_URL": url})
    _assert_one_line(result, "cannot reach the feedback database", "MEDGO_FEEDBACK_DATABASE_URL")
    assert "secret" not in result.stderr


def test_no_service_tokens(tmp_path) -> None:
    result = _start({"MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}"})
    _assert_one_line(result, "MEDGO_FEEDBACK_SERVICE_TOKENS")
    assert not (tmp_path / "f.db").exists()


def test_malformed_setting() -> None:
    result = _start({"MEDGO_FEEDBACK_SERVICE_TOKENS": "gateway"})
    _assert_one_line(result, "invalid setting MEDGO_FEEDBACK_SERVICE_TOKENS")


def test_port_in_use(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _start(
            {
                **TOKENS,
                "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp_path / 'f.db'}",
                "MEDGO_FEEDBACK_PORT": str(port),
            }
        )
    _assert_one_line(result, f"cannot listen on 127.0.0.1:{port}", "MEDGO_FEEDBACK_PORT")
