"""Child processes of our own services: start, wait until ready, stop the whole group.

The one supervisor of the repository. Local mode (`scripts/local_stack.py`), the
feedback loop's temporary evaluation vLLM (`medgo_trainer.training.loop.evaluation`),
the test fixtures and the benchmarks all need the same three things: start a service's
own entry point (so they exercise the production path, not a hand-written command) on a
free port, wait until it is ready (failing fast with the process's last log lines if it
dies), and stop the whole process group afterwards: vLLM runs its engine core in a child
process, and killing only the parent would leave it behind holding memory and cores.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import httpx

from medgo_common.readiness import wait_ready
from medgo_common.schemas.serving import SERVED_MODEL_NAME

STOP_TIMEOUT_S = 30
LOG_TAIL_LINES = 40


class ServerStartError(Exception):
    """The server did not become ready; the message ends with its log tail."""


def free_port() -> int:
    """A port the kernel just handed out (races are possible, but rare on one host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    text = path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""
    return "\n".join(text.splitlines()[-lines:])


def stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group (vLLM shuts its engine core down), then SIGKILL whatever
    is left of the group, so nothing outlives the caller."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=STOP_TIMEOUT_S)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


@contextlib.contextmanager
def launched_process(
    argv: list[str], env: Mapping[str, str], log_path: Path,
    ready: Callable[[Callable[[], bool]], str | None],
    *,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Run `argv` in its own process group until the block ends.

    `ready(still_starting)` waits for readiness and returns None, or a reason to give
    up; the failure message ends with the process's log tail. The whole group is
    stopped afterwards, whatever happened.
    """
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv, env=dict(env), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=cwd,
        )
    try:
        reason = ready(lambda: proc.poll() is None)
        if reason is not None:
            raise ServerStartError(
                f"{Path(argv[0]).name} did not start: {reason}\n"
                f"--- {log_path} (last {LOG_TAIL_LINES} lines) ---\n{log_tail(log_path)}"
            )
        yield proc
    finally:
        stop_group(proc)


def wait_http_ok(url: str, timeout_s: float, still_starting: Callable[[], bool]) -> str | None:
    """Poll `url` until it answers 200 (None), the process dies or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while still_starting():
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                return None
        if time.monotonic() >= deadline:
            return f"{url} not ready after {timeout_s:.0f} s"
        time.sleep(0.2)
    return "process exited while starting"


@contextlib.contextmanager
def launched_server(
    settings: Mapping[str, str],
    log_path: Path,
    timeout_s: float,
    served_model_name: str = SERVED_MODEL_NAME,
) -> Iterator[str]:
    """Yield the base URL of a ready server started with these `MEDGO_INFERENCE_*` values.

    Inherited `MEDGO_INFERENCE_*` variables are dropped, so the caller's settings are
    the whole configuration; host, port and status port default to 127.0.0.1 and free
    ports.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_INFERENCE_")}
    # Both ports free ones: the launcher's status port too (`/status`, `/metrics` of the
    # adapter sync), so several servers — a test's and a loop's — can run side by side.
    env |= {"MEDGO_INFERENCE_HOST": "127.0.0.1", "MEDGO_INFERENCE_PORT": str(free_port()),
            "MEDGO_INFERENCE_STATUS_PORT": str(free_port())}
    env |= settings
    url = f"http://{env['MEDGO_INFERENCE_HOST']}:{env['MEDGO_INFERENCE_PORT']}"
    launcher = str(Path(sys.executable).with_name("medgo-inference"))

    def ready(still_starting: Callable[[], bool]) -> str | None:
        return wait_ready(url, served_model_name, timeout_s, still_starting=still_starting)

    with launched_process([launcher], env, log_path, ready):
        yield url
