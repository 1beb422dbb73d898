"""Gateway test fixtures: real servers only.

- `running_gateway(settings)`: the real app under uvicorn on a free port, in a thread.
- `FeedbackProcess`: the real feedback service (`medgo-feedback`) on a temporary SQLite
  database, started and stopped at will (the spool tests take it down and back up).
- `keys`: a keys file with one key per role, created through the real `add_key`.
- `redis_server`: a throwaway Debian `redis-server` (no persistence, a free port),
  stoppable and restartable in place; tests using it skip when the binary is missing
  (`apt-get install redis-server`; scripts/test.sh installs it when run as root).
- Inference is the real vLLM of the root conftest's `vllm_server` fixture.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from medgo_common.supervise import free_port
from medgo_gateway.app import create_app
from medgo_gateway.policy.auth import Role, add_key
from medgo_gateway.settings import GatewaySettings

BOOT_TIMEOUT_S = 60
FEEDBACK_TOKEN = "gateway-test-token"
READER_TOKEN = "reader-test-token"


def wait_until(predicate, timeout_s: float, what: str, interval_s: float = 0.1) -> None:
    """Poll for a state change (bounded, so a broken path fails instead of hanging)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval_s)
    pytest.fail(f"timed out waiting for {what}")


@dataclass(frozen=True)
class Keys:
    file: Path
    clinician: str
    api_client: str
    ops: str
    clinician_id: str

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, role)}"}


@pytest.fixture
def keys(tmp_path: Path) -> Keys:
    path = tmp_path / "api_keys.json"
    clinician, entry = add_key(path, name="dr-test", role=Role.clinician, department="心内科")
    api_client, _ = add_key(path, name="svc-test", role=Role.api_client)
    ops, _ = add_key(path, name="ops-test", role=Role.ops)
    return Keys(path, clinician, api_client, ops, entry.id)


@pytest.fixture
def make_settings(tmp_path: Path, keys: Keys):
    """`make_settings(**overrides)`: settings on the test's keys, spool and a dead feedback."""

    def build(**overrides) -> GatewaySettings:
        return GatewaySettings(**(_defaults(tmp_path, keys) | overrides))

    return build


def _defaults(tmp_path: Path, keys: Keys) -> dict:
    return {
        "api_keys_file": keys.file,
        "spool_path": tmp_path / "spool.sqlite3",
        "inference_url": "http://127.0.0.1:9",  # nothing listens: tests pass the real one
        "feedback_url": "http://127.0.0.1:9",
        "feedback_token": FEEDBACK_TOKEN,
        "local_mode": True,  # the test token is short
        "replay_interval_s": 0.2,
        "default_max_tokens": 8,
    }


def metric_value(url: str, name: str) -> float:
    """One unlabelled sample of the gateway's `/metrics`."""
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not exported")


class RedisServer:
    """A throwaway `redis-server` on a free port, stoppable and restartable in place."""

    def __init__(self, binary: str, tmp_path: Path) -> None:
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tmp_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        wait_until(self._answers, 20, "redis-server to start")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """A restart after this starts empty (no persistence), like Redis in production."""
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
            self.proc = None

    def pause(self) -> None:
        """SIGSTOP: unreachable (commands time out) but keeping its data, as a partition."""
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server not installed (Debian package redis-server)")
    server = RedisServer(binary, tmp_path)
    server.start()
    try:
        yield server
    finally:
        if server.proc is not None:
            server.resume()  # a stopped process ignores SIGTERM until continued
        server.stop()


@pytest.fixture
def serve():
    """`with serve(settings) as url:` runs the real gateway for the block."""
    return running_gateway


@contextlib.contextmanager
def running_gateway(settings: GatewaySettings) -> Iterator[str]:
    """The real gateway under uvicorn in a thread; yields its base URL."""
    app = create_app(settings)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, BOOT_TIMEOUT_S, "the gateway to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


class FeedbackProcess:
    """The real feedback service as a subprocess, restartable on the same port and DB."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db = tmp_path / "feedback.db"
        self.log = tmp_path / "feedback.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_FEEDBACK_")}
        env |= {
            "MEDGO_FEEDBACK_PORT": str(self.port),
            "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{self.db}",
            "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={FEEDBACK_TOKEN},trainer={READER_TOKEN}",
            "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the test tokens are short
            # the reader checks single records (`get`), which the default trainer cannot
            "MEDGO_FEEDBACK_SERVICE_SCOPES": json.dumps(
                {"gateway": ["interactions:write", "ratings:write"], "trainer": ["*"]}
            ),
        }
        exe = str(Path(sys.executable).with_name("medgo-feedback"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [exe], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

        def ready() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"medgo-feedback exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            return False

        wait_until(ready, BOOT_TIMEOUT_S, "the feedback service to start", 0.2)

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None

    def get(self, path: str) -> httpx.Response:
        headers = {"Authorization": f"Bearer {READER_TOKEN}"}
        return httpx.get(self.url + path, headers=headers, timeout=10)

    def interaction(self, interaction_id: str, timeout_s: float = 30) -> dict:
        """The stored record of `interaction_id`, once the gateway's spool delivered it."""
        path = f"/v1/interactions/{interaction_id}"
        wait_until(lambda: self.get(path).status_code == 200, timeout_s,
                   "the record to reach the feedback service")
        return self.get(path).json()


@pytest.fixture
def feedback(tmp_path: Path) -> Iterator[FeedbackProcess]:
    """A feedback service that is *not* started; tests start it when they want it up."""
    proc = FeedbackProcess(tmp_path)
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture
def wait():
    """`wait(predicate, timeout_s, what)`: poll for a state change, fail if it never comes."""
    return wait_until


class GatewayProcess:
    """The real `medgo-gateway` server as a subprocess, to kill and restart it."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = env | {"MEDGO_GATEWAY_PORT": str(self.port)}
        self.log = tmp_path / "gateway.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        exe = str(Path(sys.executable).with_name("medgo-gateway"))
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [exe], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )

        def up() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"medgo-gateway exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                return httpx.get(self.url + "/healthz", timeout=1).status_code == 200
            return False

        wait_until(up, BOOT_TIMEOUT_S, "the gateway process to start", 0.2)

    def kill(self) -> None:
        """SIGKILL: a crash, no graceful shutdown."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            self.proc = None


@pytest.fixture
def gateway_process(tmp_path: Path, keys: Keys) -> Iterator:
    """`gateway_process(**settings)` → a not-yet-started `GatewayProcess`; killed at the end."""
    made: list[GatewayProcess] = []

    def make(**settings: str) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_GATEWAY_")}
        values = {k: str(v) for k, v in _defaults(tmp_path, keys).items()} | settings
        env |= {f"MEDGO_GATEWAY_{k.upper()}": v for k, v in values.items()}
        proc = GatewayProcess(tmp_path, env)
        made.append(proc)
        return proc

    yield make
    for proc in made:
        proc.kill()
