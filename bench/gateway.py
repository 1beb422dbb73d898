"""Gateway overhead and overload benchmark, against a running vLLM.

1. Overhead: the same non-streamed chat requests (fixed length: `max_tokens` with
   `ignore_eos`) at concurrency 1, 16 and 64, straight to vLLM and through the real
   gateway (`medgo-gateway`, its own process), interleaved per level so both see the
   same machine load. Figures: median and p99 latency of each path, the gateway's
   added median and p99, throughput through the gateway / direct, and the gateway
   process's CPU time per request (user + system), which unlike latency on a shared
   2-core box does not depend on what else the machine is doing.
2. Overload: a second gateway with a small admission budget (`--slots` in flight +
   `--slots` queued) takes 4x that many concurrent clients. Figures: status counts
   (only 200 and the intended 503 are acceptable) and the gateway's peak RSS.

The gateway records every interaction as in production; the feedback service is not
running, so the records go to the durable spool (the more expensive path).
The load generator shares the machine's cores with the gateway and vLLM.

    source scripts/env.sh
    MEDGO_INFERENCE_PORT=8001 .venv/bin/medgo-inference &      # or any vLLM on medgo-tiny
    .venv/bin/python bench/gateway.py --vllm-url http://127.0.0.1:8001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
from medgo_gateway.policy.auth import Role, add_key

PROMPTS = [
    "高血压患者日常饮食需要注意什么？",
    "二甲双胍的常见不良反应有哪些？",
    "儿童发热超过三天应该做哪些检查？",
    "急性胰腺炎的典型临床表现是什么？",
    "慢性阻塞性肺疾病如何分级？",
    "头孢类抗生素与酒精同服有什么风险？",
    "妊娠期糖尿病的诊断标准是什么？",
    "心房颤动患者何时需要抗凝治疗？",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def gateway(
    vllm_url: str, work: Path, name: str, **settings: str
) -> Iterator[tuple[str, str, int]]:
    """A `medgo-gateway` process; yields (base URL, API key, pid)."""
    keys = work / f"{name}-keys.json"
    key, _ = add_key(keys, name="bench", role=Role.api_client)
    port = _free_port()
    env = os.environ | {
        "MEDGO_GATEWAY_PORT": str(port),
        "MEDGO_GATEWAY_INFERENCE_URL": vllm_url,
        "MEDGO_GATEWAY_PASSTHROUGH_PARAMS": '["ignore_eos"]',  # fixed-length answers
        "MEDGO_GATEWAY_FEEDBACK_URL": f"http://127.0.0.1:{_free_port()}",  # down: spool
        "MEDGO_GATEWAY_API_KEYS_FILE": str(keys),
        "MEDGO_GATEWAY_SPOOL_PATH": str(work / f"{name}-spool.sqlite3"),
        "MEDGO_GATEWAY_LOG_LEVEL": "WARNING",
        "MEDGO_GATEWAY_REQUESTS_PER_MINUTE": "1000000",
        "MEDGO_GATEWAY_TOKENS_PER_MINUTE": "100000000",
    } | {f"MEDGO_GATEWAY_{k.upper()}": v for k, v in settings.items()}
    exe = str(Path(sys.executable).with_name("medgo-gateway"))
    proc = subprocess.Popen([exe], env=env, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        else:
            raise SystemExit("the gateway did not become ready")
        yield url, key, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


async def run_load(
    url: str, headers: dict[str, str], model: str, *, concurrency: int, requests: int,
    max_tokens: int,
) -> tuple[list[float], Counter, float]:
    """`requests` chats from `concurrency` workers; (latencies of 200s, statuses, wall s)."""
    latencies: list[float] = []
    statuses: Counter = Counter()
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in todo:
            body = {
                "model": model, "max_tokens": max_tokens, "ignore_eos": True,
                "messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
            }
            start = time.perf_counter()
            r = await client.post(url + "/v1/chat/completions", json=body, headers=headers)
            statuses[r.status_code] += 1
            if r.status_code == 200:
                latencies.append(time.perf_counter() - start)

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        return latencies, statuses, time.perf_counter() - began


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def overhead(args, gw_url: str, key: str, gw_pid: int) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    gw = psutil.Process(gw_pid)
    paths = {
        "direct": (args.vllm_url, {}, args.adapter),
        "gateway": (gw_url, auth, "medgo"),
    }
    print("| concurrency | requests per path | direct p50 / p99 ms | gateway p50 / p99 ms "
          "| added p50 / p99 ms | throughput gateway/direct | gateway CPU ms/request |")
    print("|---|---|---|---|---|---|---|")
    for conc in args.concurrency:
        n = max(args.requests, conc * 4)
        lat = {path: [] for path in paths}
        wall = dict.fromkeys(paths, 0.0)
        cpu = 0.0
        for url, headers, model in paths.values():  # warm-up
            asyncio.run(run_load(url, headers, model, concurrency=conc, requests=conc,
                                 max_tokens=args.max_tokens))
        # Rounds alternate direct and gateway, so both see the same (shared) machine.
        for _ in range(args.rounds):
            for path, (url, headers, model) in paths.items():
                before = sum(gw.cpu_times()[:2])
                got, statuses, seconds = asyncio.run(
                    run_load(url, headers, model, concurrency=conc, requests=n,
                             max_tokens=args.max_tokens)
                )
                if set(statuses) != {200}:
                    raise SystemExit(f"{path} at concurrency {conc}: {dict(statuses)}")
                lat[path] += got
                wall[path] += seconds
                if path == "gateway":
                    cpu += sum(gw.cpu_times()[:2]) - before
        d = (statistics.median(lat["direct"]), _p(lat["direct"], 0.99))
        g = (statistics.median(lat["gateway"]), _p(lat["gateway"], 0.99))
        print(f"| {conc} | {n * args.rounds} | {d[0] * 1e3:.1f} / {d[1] * 1e3:.1f} "
              f"| {g[0] * 1e3:.1f} / {g[1] * 1e3:.1f} "
              f"| {(g[0] - d[0]) * 1e3:+.1f} / {(g[1] - d[1]) * 1e3:+.1f} "
              f"| {wall['direct'] / wall['gateway']:.3f} "
              f"| {cpu * 1e3 / (n * args.rounds):.2f} |")


def overload(args, work: Path) -> None:
    slots = args.slots
    clients = 4 * 2 * slots  # 4x what the gateway admits (in flight + queue)
    with gateway(args.vllm_url, work, "overload", max_in_flight=str(slots),
                 max_queue=str(slots), queue_timeout_s="2") as (url, key, pid):
        proc = psutil.Process(pid)
        rss_before = proc.memory_info().rss
        peak = [rss_before]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            _, statuses, wall = asyncio.run(
                run_load(url, {"Authorization": f"Bearer {key}"}, "medgo", concurrency=clients,
                         requests=clients * args.overload_rounds, max_tokens=args.max_tokens)
            )
        finally:
            stop.set()
            sampler.join()
    bad = {s: n for s, n in statuses.items() if s not in (200, 503)}
    print(f"\nOverload: {clients} concurrent clients against {slots} in flight + {slots} queued, "
          f"{sum(statuses.values())} requests in {wall:.1f} s")
    print(f"  statuses: {dict(sorted(statuses.items()))}  unexpected: {bad or 'none'}")
    print(f"  gateway RSS: {rss_before / 2**20:.0f} MiB before, {peak[0] / 2**20:.0f} MiB peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", required=True)
    parser.add_argument("--adapter", default="medgo-tiny-sft",
                        help="model name for direct requests (what `medgo` maps to)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--requests", type=int, default=64, help="per level (at least 4x c)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per level")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--slots", type=int, default=8, help="overload gateway's in-flight")
    parser.add_argument("--overload-rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="medgo-bench-gw-") as tmp:
        work = Path(tmp)
        with gateway(args.vllm_url, work, "overhead", max_in_flight="128",
                     max_queue="128") as (url, key, pid):
            overhead(args, url, key, pid)
        overload(args, work)


if __name__ == "__main__":
    main()
