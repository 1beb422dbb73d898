"""Our services as child processes, started the way production starts them.

`served_feedback` runs `python -m medgo_feedback` (migrate, then uvicorn) on a free port,
configured only through its environment, readiness-gated on `/readyz` by the shared
supervisor; the caller may kill the process at any moment (the crash test does), and
its whole process group is reaped when the block ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from medgo_common.supervise import free_port, launched_process, wait_http_ok


@contextmanager
def served_feedback(
    env: Mapping[str, str], log_path: Path, *, ready_timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the feedback service with `env` added to ours; yields (base URL, process)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    child_env = {**os.environ, **env, "MEDGO_FEEDBACK_HOST": "127.0.0.1",
                 "MEDGO_FEEDBACK_PORT": str(port), "MEDGO_FEEDBACK_LOG_LEVEL": "WARNING"}
    with launched_process(
        [sys.executable, "-m", "medgo_feedback"], child_env, log_path,
        lambda alive: wait_http_ok(f"{base}/readyz", ready_timeout_s, alive),
    ) as process:
        yield base, process
