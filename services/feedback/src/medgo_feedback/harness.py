"""The real service in a child process, for the crash test and the benchmark.

Exactly what production runs (`python -m medgo_feedback`: migrate, then uvicorn), on
a free port, configured only through its environment variables. The caller may kill
it at any moment; the context manager always reaps it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import httpx
from medgo_common.devdb import free_port


@contextmanager
def serve_subprocess(
    env: Mapping[str, str], *, ready_timeout_s: float = 120.0
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Start the service with `env` added to ours; yields (base URL, process)."""
    port = free_port()
    child_env = {
        **os.environ,
        **env,
        "MEDGO_FEEDBACK_HOST": "127.0.0.1",
        "MEDGO_FEEDBACK_PORT": str(port),
        "MEDGO_FEEDBACK_LOG_LEVEL": "WARNING",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "medgo_feedback"],
        env=child_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"medgo-feedback exited: {process.stderr.read().strip()}")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"medgo-feedback not ready after {ready_timeout_s} s")
            time.sleep(0.1)
        yield base, process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        process.stderr.close()
