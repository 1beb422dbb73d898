"""Checkpoint rollout without downtime, with real processes.

Two `medgo-inference` replicas (each supervising a real vLLM on medgo-tiny and following
one serving manifest) behind two `medgo-gateway` replicas (reading the same manifest)
and the feedback store, under a small steady client load (streamed and non-streamed)
while:

(b) a new adapter is loaded at run time as the canary, its weight moving 0 → 0.1 → 1 → 0;
(a) it is promoted (stable; the old adapter dropped) through the manifest; then a bad
    manifest (a candidate of too high a LoRA rank) is rejected and changes nothing;
(c) one vLLM replica is SIGKILLed with streams in flight, then restarted.

Expected: no non-streamed request fails; a stream in flight on the killed replica ends
with an in-band error event; every answer's `x-medgo-checkpoint` is what the manifest
routed the conversation to at that moment (exactly, once every replica and gateway has
the manifest; during a switch, the old or the new routing); every interaction
acknowledged to a client is in the feedback store afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from medgo_common.readiness import wait_ready
from medgo_common.schemas.serving import (
    SERVED_MODEL_NAME,
    AdapterRef,
    Canary,
    ServingManifest,
    read_manifest,
)
from medgo_common.supervise import free_port, launched_process
from medgo_gateway.policy.auth import KeyStore
from medgo_gateway.routing import share

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

BOOT_TIMEOUT_S = 420
CONVERGE_TIMEOUT_S = 60
# How long a gateway may route by the manifest before the last one: its poll (0.5 s)
# plus a replica refresh (0.5 s), with room for a loaded 2-core machine.
SWITCH_LAG_S = 4.0
NEW = "medgo-tiny-v2"
PROBES = [f"probe-{i}" for i in range(4)]
LAUNCHER = str(Path(sys.executable).with_name("medgo-inference"))


def make_second_adapter(sft: Path, target: Path) -> Path:
    """A valid LoRA of the same base: the SFT adapter with its weights scaled."""
    from safetensors.torch import load_file, save_file

    shutil.copytree(sft, target)
    weights = load_file(str(target / "adapter_model.safetensors"))
    save_file({k: v * 1.5 for k, v in weights.items()}, str(target / "adapter_model.safetensors"))
    return target


@dataclass
class InferenceReplica:
    """One `medgo-inference` process group on fixed ports, so it can be killed and restarted."""

    name: str
    manifest: Path
    work: Path
    port: int = field(default_factory=free_port)
    status_port: int = field(default_factory=free_port)
    proc: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch(self) -> contextlib.AbstractContextManager:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MEDGO_INFERENCE_")}
        env |= {
            "MEDGO_INFERENCE_MANIFEST": str(self.manifest),
            "MEDGO_INFERENCE_PORT": str(self.port),
            "MEDGO_INFERENCE_STATUS_PORT": str(self.status_port),
            "MEDGO_INFERENCE_MAX_NUM_SEQS": "4",
            "MEDGO_INFERENCE_UNLOAD_GRACE_S": str(SWITCH_LAG_S),
        }

        def ready(still_starting: Callable[[], bool]) -> str | None:
            return wait_ready(self.url, SERVED_MODEL_NAME, BOOT_TIMEOUT_S, still_starting)

        log = self.work / f"{self.name}-{time.monotonic_ns()}.log"
        return launched_process([LAUNCHER], env, log, ready)

    def status(self) -> dict:
        try:
            return httpx.get(f"http://127.0.0.1:{self.status_port}/status", timeout=5).json()
        except httpx.HTTPError:
            return {}


def boot(stack: contextlib.ExitStack, replicas: list[InferenceReplica]) -> None:
    """Boot replicas in parallel (vLLM's CPU boot is the slow part); all or none."""
    managers = [r.launch() for r in replicas]
    with ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
    failure = None
    for replica, manager, future in zip(replicas, managers, futures, strict=True):
        if future.exception() is None:
            replica.proc = future.result()
            stack.push(manager)
        else:
            failure = future.exception()
    if failure is not None:
        pytest.fail(str(failure), pytrace=False)


@dataclass
class Answer:
    gateway: str
    conversation: str
    stream: bool
    started: float
    ended: float
    status: int
    checkpoint: str | None = None
    interaction: str | None = None
    in_band_error: bool = False
    done: bool = False


@dataclass
class Client:
    key: str
    user_id: str
    gateways: list[str]
    answers: list[Answer] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ask(self, gateway: str, conversation: str, *, stream: bool, max_tokens: int = 4,
            on_first_chunk: Callable[[], None] | None = None, **extra) -> Answer:
        body = {"model": "medgo", "messages": [{"role": "user", "content": "胸闷两周，怎么办？"}],
                "max_tokens": max_tokens, "stream": stream, **extra}
        headers = {"Authorization": f"Bearer {self.key}", "x-medgo-conversation-id": conversation}
        answer = Answer(gateway, conversation, stream, time.monotonic(), 0.0, 0)
        try:
            with httpx.stream("POST", gateway + "/v1/chat/completions", json=body,
                              headers=headers, timeout=120) as r:
                answer.status = r.status_code
                answer.checkpoint = r.headers.get("x-medgo-checkpoint")
                answer.interaction = r.headers.get("x-medgo-interaction-id")
                for line in r.iter_lines():
                    if on_first_chunk and line.startswith("data: "):
                        on_first_chunk()
                        on_first_chunk = None
                    answer.in_band_error |= line.startswith("data: ") and '"error"' in line
                    answer.done |= line == "data: [DONE]"
        except httpx.HTTPError:
            answer.status = -1
        answer.ended = time.monotonic()
        with self.lock:
            self.answers.append(answer)
        return answer

    def expected(self, manifest: ServingManifest, conversation: str) -> str:
        canary = manifest.canary_adapter
        if canary and share(f"{self.user_id}:{conversation}") < manifest.canary.weight:
            return canary
        return manifest.stable_adapter


def steady_load(client: Client, stop: threading.Event, limit: int) -> None:
    """Bounded background load: both gateways, both modes, 8 sticky conversations."""
    for i in range(limit):
        if stop.is_set():
            return
        client.ask(client.gateways[i % 2], f"load-{i % 8}", stream=bool(i // 2 % 2))


class Rollout:
    """Writes manifests and waits until every replica and gateway follows the last one."""

    def __init__(self, path: Path, replicas: list[InferenceReplica], gateways: list[str],
                 ops_key: str) -> None:
        self.path, self.replicas, self.gateways = path, replicas, gateways
        self.ops = {"Authorization": f"Bearer {ops_key}"}
        self.history: list[tuple[float, ServingManifest]] = []

    def write(self, manifest: ServingManifest) -> None:
        manifest.save(self.path)
        self.history.append((time.monotonic(), manifest))

    def converged(self) -> bool:
        digest, manifest = read_manifest(self.path)
        wanted = {manifest.stable_adapter, manifest.canary_adapter} - {None}
        for replica in self.replicas:
            if replica.status().get("applied_hash") != digest:
                return False
        for gateway in self.gateways:
            routing = httpx.get(gateway + "/admin/routing", headers=self.ops, timeout=10).json()
            serving = [set(r["adapters"]) for r in routing["pools"]["stable"] if r["healthy"]]
            if routing["manifest"]["hash"] != digest or len(serving) != len(self.replicas):
                return False
            if not all(wanted <= adapters for adapters in serving):
                return False
        return True

    def wait(self) -> None:
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        while not self.converged():
            assert time.monotonic() < deadline, "replicas and gateways did not converge"
            time.sleep(0.3)

    def allowed(self, client: Client, answer: Answer) -> set[str]:
        """Checkpoints the routing allowed around the answer's time (old or new routing)."""
        since = answer.started - SWITCH_LAG_S
        ends = [t for t, _ in self.history[1:]] + [float("inf")]
        live = [m for (t, m), end in zip(self.history, ends, strict=True)
                if t <= answer.ended and end >= since]
        return {client.expected(m, answer.conversation) for m in live} | {
            m.stable_adapter for m in live}


def manifest(base: Path, stable: tuple[str, Path], extra: tuple[str, Path] | None = None,
             weight: float | None = None) -> ServingManifest:
    adapters = [AdapterRef(name=n, path=str(p)) for n, p in filter(None, (stable, extra))]
    return ServingManifest(
        checkpoint_id=stable[0], base_model=str(base.resolve()), adapters=adapters,
        canary=Canary(adapter=extra[0], weight=weight) if weight is not None else None,
    )


def test_rollout_canary_and_replica_loss_under_load(
    medgo_tiny, stack_factory, gateway_factory, tmp_path: Path
) -> None:
    sft = (medgo_tiny.adapter_name, medgo_tiny.adapter.resolve())
    new = (NEW, make_second_adapter(medgo_tiny.adapter, tmp_path / "v2"))
    path = tmp_path / "serving.json"
    manifest(medgo_tiny.base, sft).save(path)
    replicas = [InferenceReplica(f"r{i}", path, tmp_path) for i in (1, 2)]
    fast = {"serving_manifest": str(path), "manifest_poll_s": "0.5",
            "replica_refresh_s": "0.5", "eject_s": "2",
            "requests_per_minute": "100000", "tokens_per_minute": "10000000",  # not tested
            "max_in_flight_per_key": "1000",  # here: one key carries all the load
            "passthrough_params": '["ignore_eos"]'}  # long streams to kill a replica under
    urls = ",".join(r.url for r in replicas)
    with contextlib.ExitStack() as stack:
        boot(stack, replicas)
        fb = stack.enter_context(stack_factory(tmp_path, urls, **fast))
        second = stack.enter_context(gateway_factory(tmp_path / "gw2", fb, urls, **fast))
        user_id = KeyStore(fb.keys_file).lookup(fb.key).id
        ops_key = _ops_key(fb.keys_file)
        client = Client(fb.key, user_id, [fb.gateway, second])
        rollout = Rollout(path, replicas, client.gateways, ops_key)
        rollout.write(manifest(medgo_tiny.base, sft))
        stop = threading.Event()
        load = threading.Thread(target=steady_load, args=(client, stop, 600), daemon=True)
        load.start()
        try:
            # (b) the candidate loaded at run time; its weight 0 → 0.1 → 1 → 0
            for weight in (0.0, 0.1, 1.0, 0.0):
                rollout.write(manifest(medgo_tiny.base, sft, new, weight))
                rollout.wait()
                _probe_exactly(client, rollout)
            # (a) promoted: the new adapter is stable, the old one dropped
            rollout.write(manifest(medgo_tiny.base, new))
            rollout.wait()
            _probe_exactly(client, rollout)
            _bad_manifest_changes_nothing(client, rollout, medgo_tiny, new, tmp_path)
            # (c) SIGKILL replica 2 with streams in flight, then restart it
            streams = _kill_with_streams_in_flight(client, replicas[1], rollout.ops)
            stack.enter_context(replicas[1].launch())
            rollout.wait()
            _probe_exactly(client, rollout)
        finally:
            stop.set()
            load.join(timeout=180)

        answers = list(client.answers)
        non_streamed = [a for a in answers if not a.stream]
        assert non_streamed and all(a.status == 200 for a in non_streamed), [
            (a.status, a.gateway) for a in non_streamed if a.status != 200]
        assert any(s.in_band_error and s.done for s in streams), "no stream ended in-band"
        for a in answers:
            assert a.status == 200 or a.stream, a
            if a.status == 200 and not (a.stream and a.in_band_error):
                assert a.checkpoint in rollout.allowed(client, a), a
        acknowledged = [a for a in answers if a.status == 200 and not a.in_band_error
                        and (a.done or not a.stream)]
        _all_recorded(fb, acknowledged)


def _ops_key(keys_file: Path) -> str:
    return subprocess.run(
        [str(Path(sys.executable).parent / "medgo-gateway"), "keys", "add", "--file",
         str(keys_file), "--name", "ops-rollout", "--role", "ops"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()


def _probe_exactly(client: Client, rollout: Rollout) -> None:
    """Once converged, every answer is exactly the routing of the current manifest."""
    current = rollout.history[-1][1]
    for gateway in client.gateways:
        for conversation in PROBES:
            answer = client.ask(gateway, conversation, stream=conversation.endswith("1"))
            assert answer.status == 200, answer
            assert answer.checkpoint == client.expected(current, conversation), answer


def _bad_manifest_changes_nothing(client: Client, rollout: Rollout, tiny, stable: tuple,
                                  tmp_path: Path) -> None:
    """A candidate of too high a rank: every replica rejects the manifest, the loaded
    set and the answers stay as they were, and the good manifest applies again."""
    good = rollout.history[-1][1]
    too_big = make_second_adapter(tiny.adapter, tmp_path / "too-big")
    config = json.loads((too_big / "adapter_config.json").read_text())
    (too_big / "adapter_config.json").write_text(json.dumps(config | {"r": 64}))
    rollout.write(manifest(tiny.base, stable, ("too-big", too_big), weight=0.5))
    deadline = time.monotonic() + CONVERGE_TIMEOUT_S
    while not all(r.status().get("state") == "rejected" for r in rollout.replicas):
        assert time.monotonic() < deadline, [r.status() for r in rollout.replicas]
        time.sleep(0.3)
    assert all("rank 64" in r.status()["error"] for r in rollout.replicas)
    for gateway in client.gateways:
        for conversation in PROBES:
            answer = client.ask(gateway, conversation, stream=False)
            assert (answer.status, answer.checkpoint) == (200, stable[0]), answer
    rollout.write(good)
    rollout.wait()


def _kill_with_streams_in_flight(
    client: Client, victim: InferenceReplica, ops: dict[str, str]
) -> list[Answer]:
    """Open long streams until at least one runs on `victim`, then SIGKILL its group."""
    started = threading.Semaphore(0)
    gateway = client.gateways[0]
    with ThreadPoolExecutor(4) as pool:
        # Long enough (1,024 tokens) that they are still running when we look, on a fast
        # idle machine too; fewest-in-flight puts two of the four on each replica.
        futures = [pool.submit(client.ask, gateway, f"long-{i}", stream=True, max_tokens=1024,
                               ignore_eos=True, on_first_chunk=started.release)
                   for i in range(4)]
        assert started.acquire(timeout=120), "the long streams did not start"
        deadline = time.monotonic() + 60
        while not _serving_a_stream(gateway, ops, victim):
            assert time.monotonic() < deadline, f"no stream reached {victim.name}"
            time.sleep(0.1)
        os.killpg(victim.proc.pid, signal.SIGKILL)
        streams = [f.result() for f in futures]
    assert all(s.status == 200 and s.done for s in streams), streams
    return streams


def _serving_a_stream(gateway: str, ops: dict[str, str], victim: InferenceReplica) -> bool:
    """Whether the gateway has a request in flight on `victim` right now."""
    routing = httpx.get(gateway + "/admin/routing", headers=ops, timeout=10).json()
    return any(r["url"] == victim.url and r["in_flight"] for r in routing["pools"]["stable"])


def _all_recorded(fb, acknowledged: list[Answer], timeout_s: float = 60) -> None:
    """Every acknowledged interaction reaches the feedback store, with its checkpoint."""
    missing = {a.interaction: a.checkpoint for a in acknowledged}
    deadline = time.monotonic() + timeout_s
    while missing and time.monotonic() < deadline:
        for interaction, checkpoint in list(missing.items()):
            r = fb.feedback_get(f"/v1/interactions/{interaction}")
            if r.status_code == 200:
                assert r.json()["checkpoint_id"] == checkpoint
                del missing[interaction]
        time.sleep(0.5)
    assert not missing, f"{len(missing)} acknowledged interactions not in the feedback store"

