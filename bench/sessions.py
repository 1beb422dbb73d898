"""What a revocable session costs per request: an API key against a session of it.

One `medgo-gateway` process with `MEDGO_GATEWAY_REDIS_URL` on a throwaway Debian
`redis-server` (no persistence, a free port), nothing behind it: requests go to
`GET /v1/feedback/reasons`, which needs no inference and no feedback service, so the
difference between the two is the session's work (signature, key lookup, and the
one-round-trip revocation check in Redis). Rounds alternate key and session so both
see the same machine load. Figures: the gateway process's CPU time (user + system)
per request, which does not depend on what else runs on a shared box, and p50/p99
latency as seen by one sequential client.

    source scripts/env.sh
    .venv/bin/python bench/sessions.py --requests 500 --rounds 4
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from medgo_common.supervise import free_port

BIN = Path(sys.executable).parent


@contextlib.contextmanager
def _redis(directory: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server not installed (Debian package redis-server)")
    port = free_port()
    proc = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(directory)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@contextlib.contextmanager
def _gateway(directory: Path, redis_url: str) -> Iterator[tuple[str, str, int]]:
    """(URL, clinician key, pid) of a gateway process on `redis_url`."""
    keys = directory / "api_keys.json"
    key = subprocess.run([str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys),
                          "--name", "bench", "--role", "clinician"],
                         capture_output=True, text=True, check=True).stdout.strip()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_GATEWAY_")} | {
        "MEDGO_GATEWAY_PORT": str(port), "MEDGO_GATEWAY_API_KEYS_FILE": str(keys),
        "MEDGO_GATEWAY_SPOOL_PATH": str(directory / "spool.sqlite3"),
        "MEDGO_GATEWAY_REDIS_URL": redis_url, "MEDGO_GATEWAY_LOG_LEVEL": "WARNING",
        "MEDGO_GATEWAY_INFERENCE_URL": "http://127.0.0.1:9",  # not used by this route
    }
    with (directory / "gateway.log").open("wb") as log:
        proc = subprocess.Popen([str(BIN / "medgo-gateway")], env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"medgo-gateway did not start; see {directory / 'gateway.log'}")
            time.sleep(0.2)
        yield url, key, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _round(client: httpx.Client, token: str, n: int, proc: psutil.Process
           ) -> tuple[float, list[float]]:
    """(CPU seconds of the gateway, latencies) for `n` sequential requests."""
    headers = {"Authorization": f"Bearer {token}"}
    before = proc.cpu_times()
    latencies = []
    for _ in range(n):
        start = time.perf_counter()
        response = client.get("/v1/feedback/reasons", headers=headers)
        latencies.append(time.perf_counter() - start)
        response.raise_for_status()
    after = proc.cpu_times()
    return (after.user + after.system) - (before.user + before.system), latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="requests per round")
    parser.add_argument("--rounds", type=int, default=4, help="rounds per credential")
    args = parser.parse_args()
    with (tempfile.TemporaryDirectory(prefix="medgo-bench-sessions-") as tmp,
          _redis(Path(tmp)) as redis_url, _gateway(Path(tmp), redis_url) as (url, key, pid),
          httpx.Client(base_url=url, timeout=30) as client):
        session = client.post("/v1/sessions", headers={"Authorization": f"Bearer {key}"})
        token = session.raise_for_status().json()["token"]
        proc = psutil.Process(pid)
        _round(client, key, 100, proc)  # warm-up
        _round(client, token, 100, proc)
        results: dict[str, tuple[float, list[float]]] = {"key": (0.0, []), "session": (0.0, [])}
        for _ in range(args.rounds):
            for name, credential in (("key", key), ("session", token)):
                cpu, latencies = _round(client, credential, args.requests, proc)
                total_cpu, all_latencies = results[name]
                results[name] = (total_cpu + cpu, all_latencies + latencies)
    n = args.requests * args.rounds
    print(f"{n} requests per credential, GET /v1/feedback/reasons, Redis on localhost")
    print("credential  gateway CPU µs/request  p50 ms  p99 ms")
    for name, (cpu, latencies) in results.items():
        cuts = statistics.quantiles(latencies, n=100)
        print(f"{name:<10}  {cpu / n * 1e6:>22.0f}  {cuts[49] * 1e3:>6.2f}  {cuts[98] * 1e3:>6.2f}")


if __name__ == "__main__":
    main()
