"""The gateway side by side with its peers, against one running vLLM.

Five paths to the same vLLM and the same served LoRA adapter (a LoRA request costs
~70 ms more than the bare base on this CPU, so every path names the adapter):

- direct: vLLM itself;
- gateway: `medgo-gateway` in its own process with every policy on — API key, quotas
  (memory storage, as in local mode), safety, prompt redaction, recording (feedback
  is down, so every record takes the fsynced spool path and stays there; with
  `--feedback-up` also `gateway-delivering`, whose records go on to the real feedback
  service, as in production: a POST per batch and an acknowledging spool write);
- litellm: LiteLLM's proxy, installed by this script into its own virtualenv under
  var/bench/ (kept offline: `LITELLM_LOCAL_MODEL_COST_MAP=True`, a master key);
- passthrough: bench/passthrough.py, the floor for a Python proxy, with httpx (the
  issue's floor) and with aiohttp (`passthrough-aiohttp`, the lower one).

Per concurrency level (1, 16, 64), non-streamed (`max_tokens` 16) and streamed (64),
all with `ignore_eos` so every answer has the same length: a warm-up, then rounds
that visit the paths in turn so all see the same machine load. Figures: p50/p99
latency and what each proxy adds to direct's, throughput relative to direct, and
each proxy's CPU time (its process tree, user + system) per request and per
streamed chunk — CPU, which depends less than latency on what else runs on a shared
2-core box (a round still moves ±15 %) — with its ratio to the aiohttp pass-through
over all rounds and within each round (median and range: how far one round can be
trusted). Before the load, each proxy's CPU with no requests (`--idle-s`): at
concurrency 1 a request waits ~0.3 s for vLLM on this CPU, and background work is part
of its figure.
`--profile` samples the gateway with py-spy at the highest concurrency.
`--phi-off` adds the gateway with prompt redaction off and with no PHI detector at all
(issue 18: detector on vs off); `--before-src DIR` adds a gateway run from another
checkout's sources, so a change is measured against the old code in the same run.

    source scripts/env.sh
    MEDGO_INFERENCE_PORT=8001 .venv/bin/medgo-inference &      # vLLM on medgo-tiny
    .venv/bin/python bench/gateway.py --vllm-url http://127.0.0.1:8001 --profile

`--proxy-cpus 1` with vLLM started under `taskset -c 0` gives every proxy a core of its
own, as in production (the throughput ratio then measures the proxy, not its contention
with vLLM for 2 cores); vLLM and this client share core 0 on every path alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
from medgo_feedback.db import upgrade_to_head
from medgo_feedback.settings import FeedbackSettings
from medgo_gateway.policy.auth import Role, add_key
from medgo_testing.services import served_feedback

ROOT = Path(__file__).resolve().parents[1]
PEER_VENV = ROOT / "var" / "bench" / "litellm-venv"
SPY_VENV = ROOT / "var" / "bench" / "pyspy-venv"  # --profile without LiteLLM
FEEDBACK_DB = "feedback.sqlite3"  # --feedback-up, in the work directory
PY_SPY = "py-spy==0.4.3"
# LiteLLM's `proxy` extra needs `litellm-proxy-extras` (Prisma migrations, for a
# database we do not use), which the package index here lacks: its runtime imports
# are listed instead.
PEER_PACKAGES = [
    "litellm==1.108.14", "fastapi==0.165.0", "uvicorn==0.55.0", "uvloop==0.23.0",
    "backoff==2.2.1", "PyYAML==6.0.4", "orjson==3.13.0", "APScheduler==3.11.3",
    "gunicorn==27.0.1", "rq==3.0.0", "python-multipart==0.0.34", "cryptography==51.0.1",
    "email-validator==2.4.0", "websockets==17.4", "mcp==2.3.0", "Expression==5.8.0",
    "fastapi-sso==0.23.0", "soundfile==0.14.0",
]
MASTER_KEY = "sk-medgo-bench"
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


@dataclass
class Endpoint:
    """One way to reach the model: where, with which key and model name, which process."""

    name: str
    url: str
    headers: dict[str, str]
    model: str
    pid: int | None = None

    def cpu_s(self) -> float:
        """CPU seconds of the proxy's process tree so far (0 for direct)."""
        if self.pid is None:
            return 0.0
        procs = [psutil.Process(self.pid)]
        procs += procs[0].children(recursive=True)
        total = 0.0
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                times = proc.cpu_times()
                total += times.user + times.system
        return total


@dataclass
class Sample:
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: float = 0.0
    requests: int = 0
    chunks: int = 0
    completion_tokens: int = 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_ready(url: str, proc: subprocess.Popen, what: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.3)
    raise SystemExit(f"{what} did not become ready in {timeout_s:.0f} s")


@contextlib.contextmanager
def _process(argv: list[str], env: dict[str, str], ready_url: str, what: str,
             log: Path) -> Iterator[int]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        _wait_ready(ready_url, proc, what)
        yield proc.pid
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def gateway(vllm_url: str, adapter: str, work: Path, name: str = "gateway",
            redact_records: bool = True, src: Path | None = None,
            **settings: str) -> Iterator[Endpoint]:
    """`medgo-gateway` with every policy on, recording to its spool (feedback down).

    `settings` override MEDGO_GATEWAY_* variables (`redact_prompts="false"`: prompt
    redaction off). `redact_records=False` runs bench/gateway_unredacted.py instead:
    the same gateway with the PHI detector replaced by the identity, the baseline of
    issue 18's "detector on vs off" (no setting of the gateway can turn it off). `src`:
    run the gateway and medgo_common of another checkout (a before/after in one run).
    """
    keys = work / f"{name}-keys.json"
    key, _ = add_key(keys, name="bench", role=Role.api_client)
    port = _free_port()
    env = os.environ | {
        "MEDGO_GATEWAY_PORT": str(port),
        "MEDGO_GATEWAY_INFERENCE_URL": vllm_url,
        "MEDGO_GATEWAY_MODEL_ADAPTER": adapter,
        "MEDGO_GATEWAY_PASSTHROUGH_PARAMS": '["ignore_eos"]',  # fixed-length answers
        "MEDGO_GATEWAY_FEEDBACK_URL": f"http://127.0.0.1:{_free_port()}",  # down: spool
        "MEDGO_GATEWAY_API_KEYS_FILE": str(keys),
        "MEDGO_GATEWAY_SPOOL_PATH": str(work / f"{name}-spool.sqlite3"),
        "MEDGO_GATEWAY_LOG_LEVEL": "WARNING",
        "MEDGO_GATEWAY_REDACT_PROMPTS": "true",
        "MEDGO_GATEWAY_REQUESTS_PER_MINUTE": "1000000",
        "MEDGO_GATEWAY_TOKENS_PER_MINUTE": "100000000",
        "MEDGO_GATEWAY_MAX_IN_FLIGHT_PER_KEY": "1024",
        "MEDGO_GATEWAY_MAX_IN_FLIGHT": "256",
        "MEDGO_GATEWAY_MAX_QUEUE": "256",
    } | {f"MEDGO_GATEWAY_{k.upper()}": v for k, v in settings.items()}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(src / "libs" / "medgo_common" / "src"), str(src / "services" / "gateway" / "src"),
             env.get("PYTHONPATH", "")])
    url = f"http://127.0.0.1:{port}"
    argv = ([str(Path(sys.executable).with_name("medgo-gateway"))] if redact_records
            else [sys.executable, str(ROOT / "bench" / "gateway_unredacted.py")])
    with _process(argv, env, url + "/readyz", name, work / f"{name}.log") as pid:
        yield Endpoint(name, url, {"Authorization": f"Bearer {key}"}, "medgo", pid)


@contextlib.contextmanager
def feedback_service(work: Path) -> Iterator[tuple[str, str, int]]:
    """The real feedback service on SQLite, migrated; yields (URL, gateway token, pid).

    For `--feedback-up`: a gateway pointed at it delivers every record (a POST per
    batch, then the acknowledgement written to its spool), as in production.
    """
    url = f"sqlite:///{work / FEEDBACK_DB}"
    token = secrets.token_urlsafe(32)
    upgrade_to_head(FeedbackSettings(database_url=url, service_tokens={"gateway": token}))
    env = {"MEDGO_FEEDBACK_DATABASE_URL": url, "MEDGO_FEEDBACK_SERVICE_TOKENS": f"gateway={token}"}
    with served_feedback(env, work / "feedback.log") as (base, process):
        yield base, token, process.pid


def delivered(work: Path) -> int:
    """Interactions the feedback service has stored (read from its database file)."""
    with contextlib.closing(sqlite3.connect(work / FEEDBACK_DB)) as db:
        return db.execute("SELECT count(*) FROM interactions").fetchone()[0]


@contextlib.contextmanager
def passthrough(vllm_url: str, adapter: str, work: Path,
                client: str = "httpx") -> Iterator[Endpoint]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    name = "passthrough" if client == "httpx" else f"passthrough-{client}"
    argv = [sys.executable, str(ROOT / "bench" / "passthrough.py"), "--upstream", vllm_url,
            "--port", str(port), "--client", client]
    # Its only route is POST: a GET answering 405 means it is up.
    with _process(argv, dict(os.environ), url + "/v1/chat/completions", name,
                  work / f"{name}.log") as pid:
        yield Endpoint(name, url, {}, adapter, pid)


def ensure_venv(venv: Path, packages: list[str]) -> Path:
    """`packages` in their own virtualenv under var/bench/, installed once with pip;
    returns its bin/ (the project's environment never gets them)."""
    python = venv / "bin" / "python"
    marker = venv / "installed.txt"
    if not marker.exists() or marker.read_text() != "\n".join(packages):
        print(f"installing {packages[0]} into {venv} (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages], check=True)
        marker.write_text("\n".join(packages))
    return venv / "bin"


@contextlib.contextmanager
def litellm(vllm_url: str, adapter: str, work: Path) -> Iterator[Endpoint]:
    bin_dir = ensure_venv(PEER_VENV, PEER_PACKAGES)
    config = work / "litellm.yaml"
    config.write_text(json.dumps({  # JSON is YAML
        "model_list": [{
            "model_name": adapter,
            "litellm_params": {"model": f"hosted_vllm/{adapter}",
                               "api_base": vllm_url + "/v1", "api_key": "none"},
        }],
        "litellm_settings": {"telemetry": False, "drop_params": False},
        "general_settings": {"master_key": MASTER_KEY},
    }))
    port = _free_port()
    env = os.environ | {
        "LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOG": "ERROR", "LITELLM_TELEMETRY": "False", "HF_HUB_OFFLINE": "1",
    }
    env.pop("PYTHONPATH", None)  # its own virtualenv, not the project's sources
    argv = [str(bin_dir / "litellm"), "--config", str(config), "--host", "127.0.0.1",
            "--port", str(port), "--num_workers", "1"]
    url = f"http://127.0.0.1:{port}"
    with _process(argv, env, url + "/health/liveliness", "litellm", work / "litellm.log") as pid:
        yield Endpoint("litellm", url, {"Authorization": f"Bearer {MASTER_KEY}"}, adapter, pid)


async def run_load(path: Endpoint, *, concurrency: int, requests: int, max_tokens: int,
                   stream: bool) -> Sample:
    """`requests` chats from `concurrency` workers; every answer must be a 200."""
    sample = Sample()
    statuses: Counter = Counter()
    todo = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async def one(client: httpx.AsyncClient, i: int) -> None:
        body = {
            "model": path.model, "max_tokens": max_tokens, "ignore_eos": True,
            "stream": stream, "messages": [{"role": "user", "content": PROMPTS[i % 8]}],
        }
        if stream:
            body["stream_options"] = {"include_usage": True}
        start = time.perf_counter()
        async with client.stream("POST", path.url + "/v1/chat/completions", json=body,
                                 headers=path.headers) as r:
            statuses[r.status_code] += 1
            if not stream:
                usage = json.loads(await r.aread()).get("usage") or {}
                sample.completion_tokens += usage.get("completion_tokens") or 0
            else:
                async for line in r.aiter_lines():
                    if line.startswith("data: ") and line != "data: [DONE]":
                        sample.chunks += 1
                        usage = json.loads(line[6:]).get("usage") or {}
                        sample.completion_tokens += usage.get("completion_tokens") or 0
        if r.status_code == 200:
            sample.latencies.append(time.perf_counter() - start)

    async def worker(client: httpx.AsyncClient) -> None:
        for i in todo:
            await one(client, i)

    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        before = path.cpu_s()
        began = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        sample.wall = time.perf_counter() - began
        sample.cpu = path.cpu_s() - before
    if set(statuses) != {200}:
        raise SystemExit(f"{path.name} at concurrency {concurrency}: {dict(statuses)}")
    sample.requests = requests
    return sample


def pin(paths: list[Endpoint], cpus: set[int]) -> None:
    """Every proxy's threads (its whole process tree) on `cpus`, this client elsewhere.

    In production the gateway and vLLM do not share cores (vLLM runs on its GPU node);
    on this 2-core box a proxy otherwise takes its CPU from vLLM's, and its throughput
    ratio measures that contention rather than the proxy. Pin vLLM off `cpus` yourself
    (`taskset -c 0 .venv/bin/medgo-inference`).
    """
    for path in paths:
        if path.pid is not None:
            pin_tree(path.pid, cpus)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)) - cpus)


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Every thread of `pid` and its children on `cpus`."""
    root = psutil.Process(pid)
    for proc in (root, *root.children(recursive=True)):
        for thread in proc.threads():
            os.sched_setaffinity(thread.id, cpus)


def _p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def compare(args, paths: list[Endpoint], *, stream: bool) -> None:
    max_tokens = args.stream_tokens if stream else args.max_tokens
    kind = f"streamed, {max_tokens} tokens" if stream else f"non-streamed, {max_tokens} tokens"
    print(f"\n**{kind}** — per level {args.rounds} rounds of every path in turn\n")
    print("| c | path | requests | p50 / p99 ms | added p50 / p99 ms | throughput vs direct "
          "| CPU ms/request | CPU µs/chunk | CPU × passthrough (httpx / aiohttp) "
          "| × aiohttp per round: median (min–max) | tokens/answer |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for conc in args.concurrency:
        n = max(args.stream_requests if stream else args.requests, 2 * conc)
        total = {p.name: Sample() for p in paths}
        rounds: dict[str, list[Sample]] = {p.name: [] for p in paths}
        for p in paths:  # warm-up: connections, caches
            asyncio.run(run_load(p, concurrency=conc, requests=conc, max_tokens=max_tokens,
                                 stream=stream))
        for _ in range(args.rounds):
            for p in paths:
                got = asyncio.run(run_load(p, concurrency=conc, requests=n,
                                           max_tokens=max_tokens, stream=stream))
                rounds[p.name].append(got)
                t = total[p.name]
                t.latencies += got.latencies
                t.wall += got.wall
                t.cpu += got.cpu
                t.requests += got.requests
                t.chunks += got.chunks
                t.completion_tokens += got.completion_tokens
        d = total["direct"]
        d50, d99 = statistics.median(d.latencies), _p(d.latencies, 0.99)
        # The goals are ratios to the pass-through's CPU (per chunk: streams); shown
        # against both clients' pass-throughs.
        floors = [total[name] for name in ("passthrough", "passthrough-aiohttp")]
        per = (lambda x: x.cpu / x.chunks) if stream else (lambda x: x.cpu / x.requests)
        for p in paths:
            t = total[p.name]
            p50, p99 = statistics.median(t.latencies), _p(t.latencies, 0.99)
            added = "—" if p.pid is None else f"{(p50 - d50) * 1e3:+.1f} / {(p99 - d99) * 1e3:+.1f}"
            cpu_req = "—" if p.pid is None else f"{t.cpu * 1e3 / t.requests:.2f}"
            cpu_chunk = ("—" if p.pid is None or not t.chunks
                         else f"{t.cpu * 1e6 / t.chunks:.0f}")
            ratio = paired = "—"
            if p.pid is not None and all(f.cpu > 0 for f in floors):
                ratio = " / ".join(f"{per(t) / per(f):.2f}" for f in floors)
                paired = _paired(rounds[p.name], rounds["passthrough-aiohttp"], per)
            print(f"| {conc} | {p.name} | {t.requests} | {p50 * 1e3:.1f} / {p99 * 1e3:.1f} "
                  f"| {added} | {d.wall / t.wall:.3f} | {cpu_req} | {cpu_chunk} | {ratio} "
                  f"| {paired} | {t.completion_tokens / t.requests:.1f} |")


def _paired(mine: list[Sample], floor: list[Sample], per: Callable[[Sample], float]) -> str:
    """The CPU ratio to the aiohttp pass-through within each round, then across rounds.

    Rounds visit the paths back to back, so what shifts a round as a whole (how vLLM
    happened to batch, the box's other load) moves both sides of a round's ratio alike;
    the spread of the per-round ratios shows how far one round can be trusted.
    """
    ratios = [per(m) / per(f) for m, f in zip(mine, floor, strict=True) if f.cpu > 0]
    if not ratios:
        return "—"
    return f"{statistics.median(ratios):.2f} ({min(ratios):.2f}–{max(ratios):.2f})"


def idle_cpu(paths: list[Endpoint], seconds: float) -> None:
    """Each proxy's CPU with no requests (ms per second): its background work.

    At concurrency 1 a request waits a third of a second for vLLM on this CPU, so the
    background (the gateway's replica probes and spool retries, every server's timers)
    is a visible share of the CPU per request there; printed so it can be read out.
    """
    proxies = [p for p in paths if p.pid is not None]
    before = {p.name: p.cpu_s() for p in proxies}
    time.sleep(seconds)
    print(f"\nidle CPU over {seconds:.0f} s, no requests (ms per second): " + ", ".join(
        f"{p.name} {(p.cpu_s() - before[p.name]) / seconds * 1e3:.2f}" for p in proxies))


def profile(args, gw: Endpoint, work: Path) -> None:
    """py-spy on the gateway under the highest concurrency; top frames by own time.

    Samples only the thread holding the GIL (`--gil`): without it py-spy, which does not
    pause the process here, counts threads blocked in a queue or in epoll as busy.
    """
    conc = max(args.concurrency)
    raw = args.profile_raw or work / "gateway.pyspy.txt"
    spy = subprocess.Popen(
        [str(ensure_venv(SPY_VENV, [PY_SPY]) / "py-spy"), "record", "--pid", str(gw.pid),
         "--format", "raw", "--output", str(raw), "--rate", "250", "--nonblocking",
         "--gil"],  # only the thread holding the GIL: CPU spent in Python, not waits
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)
    stream = args.modes == ["stream"]  # streamed only when that is the only mode asked
    for _ in range(args.rounds):
        asyncio.run(run_load(
            gw, concurrency=conc, stream=stream,
            requests=max(args.stream_requests if stream else args.requests, 2 * conc),
            max_tokens=args.stream_tokens if stream else args.max_tokens))
    spy.send_signal(signal.SIGINT)
    spy.wait(timeout=60)
    own: Counter = Counter()
    inclusive: Counter = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [f for f in stack.split(";") if f]
        samples += int(count)
        if frames:
            own[frames[-1]] += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
    kind = "streamed" if stream else "non-streamed"
    print(f"\n**py-spy, gateway at concurrency {conc} ({kind}), {samples} samples**\n")
    print("own time (top 12):")
    for frame, count in own.most_common(12):
        print(f"  {100 * count / samples:5.1f} %  {frame}")
    print("including callees (top 25 frames of our code, uvicorn, starlette, httpx):")
    shown = 0
    for frame, count in inclusive.most_common():
        if any(k in frame for k in ("medgo", "uvicorn", "starlette", "httpx", "fastapi",
                                    "limits", "pydantic", "h11", "httpcore")):
            print(f"  {100 * count / samples:5.1f} %  {frame}")
            shown += 1
            if shown == 25:
                break


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vllm-url", required=True)
    parser.add_argument("--adapter", default="medgo-tiny-sft",
                        help="the served LoRA adapter every path names")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--requests", type=int, default=64, help="non-streamed, per round")
    parser.add_argument("--stream-requests", type=int, default=32, help="streamed, per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--stream-tokens", type=int, default=64)
    parser.add_argument("--modes", nargs="*", choices=["json", "stream"],
                        default=["json", "stream"],
                        help="non-streamed and/or streamed (none: only --profile)")
    parser.add_argument("--skip-litellm", action="store_true")
    parser.add_argument("--phi-off", action="store_true",
                        help="also the gateway with prompt redaction off, and with no PHI "
                        "detector at all (issue 18: detector on vs off)")
    parser.add_argument("--before-src", type=Path,
                        help="also a gateway run from this checkout's sources, e.g. "
                        "`git archive <commit> libs/medgo_common/src services/gateway/src`")
    parser.add_argument("--proxy-cpus", type=int, nargs="+", metavar="CPU",
                        help="run every proxy on these CPUs and the client on the others "
                        "(start vLLM pinned off them too, e.g. `taskset -c 0`)")
    parser.add_argument("--idle-s", type=float, default=20,
                        help="seconds to measure each proxy's CPU with no load first (0: skip)")
    parser.add_argument(
        "--feedback-up", action="store_true",
        help="also the gateway with the real feedback service up (SQLite): every record "
        "is delivered and acknowledged, as in production; the default keeps feedback down")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway")
    parser.add_argument("--profile-raw", type=Path,
                        help="keep py-spy's raw stacks here (`--profile`)")
    args = parser.parse_args()
    # A `timeout` or Ctrl-C must still stop the proxies this script started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    load = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="medgo-bench-gw-") as tmp, \
            contextlib.ExitStack() as stack:
        work = Path(tmp)
        direct = Endpoint("direct", args.vllm_url, {}, args.adapter)
        gw = stack.enter_context(gateway(args.vllm_url, args.adapter, work))
        paths = [direct, gw, stack.enter_context(passthrough(args.vllm_url, args.adapter, work)),
                 stack.enter_context(passthrough(args.vllm_url, args.adapter, work, "aiohttp"))]
        if args.before_src:
            paths.insert(2, stack.enter_context(gateway(
                args.vllm_url, args.adapter, work, "gateway-before", src=args.before_src)))
        if args.phi_off:
            paths[-2:-2] = [  # before the pass-throughs
                stack.enter_context(gateway(args.vllm_url, args.adapter, work,
                                            "gateway-prompt-off", redact_prompts="false")),
                stack.enter_context(gateway(args.vllm_url, args.adapter, work, "gateway-phi-off",
                                            redact_records=False, redact_prompts="false")),
            ]
        feedback_pid = None
        if args.feedback_up:
            base, token, feedback_pid = stack.enter_context(feedback_service(work))
            paths.insert(2, stack.enter_context(gateway(
                args.vllm_url, args.adapter, work, "gateway-delivering",
                feedback_url=base, feedback_token=token)))
            if args.before_src:
                paths.insert(3, stack.enter_context(gateway(
                    args.vllm_url, args.adapter, work, "gateway-delivering-before",
                    src=args.before_src, feedback_url=base, feedback_token=token)))
        if not args.skip_litellm:
            paths.append(stack.enter_context(litellm(args.vllm_url, args.adapter, work)))
        print(f"load average at start: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
              f"({os.cpu_count()} CPUs)")
        if args.proxy_cpus:
            pin(paths, set(args.proxy_cpus))
            if feedback_pid is not None:  # a service like vLLM: off the proxies' CPUs
                pin_tree(feedback_pid, os.sched_getaffinity(0))
            print(f"proxies pinned to CPUs {sorted(args.proxy_cpus)}, this client to "
                  f"{sorted(os.sched_getaffinity(0))}")
        if args.idle_s:
            idle_cpu(paths, args.idle_s)
        for mode in args.modes:
            compare(args, paths, stream=mode == "stream")
        if args.profile:
            profile(args, gw, work)
        if args.feedback_up:
            print(f"\nthe feedback service holds {delivered(work)} interactions "
                  "(the delivering gateways' records, warm-ups included)")
    load = os.getloadavg()
    print(f"\nload average at end: {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}; "
          f"benchmark wall time {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
