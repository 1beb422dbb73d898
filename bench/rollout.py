"""Rollout benchmark: a manifest change → the new adapter answering on every replica,
against restarting the base model (what a checkpoint change cost before).

    .venv/bin/python bench/rollout.py                  # the figures in docs/benchmarks.md
    .venv/bin/python bench/rollout.py --replicas 1 --rounds 3

Starts `--replicas` real `medgo-inference` launchers (each supervising vLLM on
medgo-tiny, following one serving manifest), then per round writes a manifest whose
stable adapter is a new one (a copy of the SFT adapter under a new name and directory,
as a promotion brings) and measures the wall time until a chat completion naming it
answers 200 on every replica (polled every 50 ms, 1 token). Then it changes the base
directory (a copy of the base), which the launcher can only apply by restarting vLLM,
and measures the same time. Prints one line per round and a summary.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from medgo_common.paths import default_model_dir
from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_common.supervise import free_port, launched_server

POLL_S = 0.05


def answers(url: str, model: str) -> bool:
    body = {"model": model, "messages": [{"role": "user", "content": "胸痛"}], "max_tokens": 1}
    try:
        return httpx.post(url + "/v1/chat/completions", json=body, timeout=60).status_code == 200
    except httpx.HTTPError:
        return False


def time_until_served(urls: list[str], model: str, timeout_s: float) -> float:
    """Seconds from now until `model` answers on every replica."""
    start = time.perf_counter()
    pending = list(urls)
    while pending:
        pending = [u for u in pending if not answers(u, model)]
        if time.perf_counter() - start > timeout_s:
            raise RuntimeError(f"{model} not served on {pending} after {timeout_s:.0f} s")
        if pending:
            time.sleep(POLL_S)
    return time.perf_counter() - start


def publish(path: Path, base: Path, name: str, adapter: Path) -> None:
    ServingManifest(
        checkpoint_id=name, base_model=str(base),
        adapters=[AdapterRef(name=name, path=str(adapter))],
    ).save(path)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=default_model_dir() / "medgo-tiny")
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    base = (args.model_dir / "base").resolve()
    sft = (args.model_dir / "adapters" / "sft").resolve()
    with (
        tempfile.TemporaryDirectory(prefix="bench-rollout-") as tmp,
        contextlib.ExitStack() as stack,
    ):
        work = Path(tmp)
        manifest = work / "serving.json"
        publish(manifest, base, "v0", sft)
        settings = {"MEDGO_INFERENCE_MANIFEST": str(manifest), "MEDGO_INFERENCE_MAX_NUM_SEQS": "4",
                    "MEDGO_INFERENCE_UNLOAD_GRACE_S": "2"}  # fmt: skip
        urls = []
        for i in range(args.replicas):
            started = time.perf_counter()
            urls.append(stack.enter_context(launched_server(
                settings | {"MEDGO_INFERENCE_STATUS_PORT": str(free_port())},
                work / f"r{i}.log", timeout_s=600)))  # fmt: skip
            print(f"replica {i} ready in {time.perf_counter() - started:.1f} s", flush=True)
        adapter_times = []
        for n in range(1, args.rounds + 1):
            name = f"v{n}"
            directory = shutil.copytree(sft, work / "adapters" / name)
            publish(manifest, base, name, directory)
            adapter_times.append(time_until_served(urls, name, timeout_s=120))
            print(f"adapter {name}: answering on {len(urls)} replicas after "
                  f"{adapter_times[-1]:.2f} s", flush=True)
        new_base = shutil.copytree(base, work / "base-copy")
        publish(manifest, new_base, "on-new-base", sft)
        base_time = time_until_served(urls, "on-new-base", timeout_s=900)
        print(f"base change (vLLM restart): answering on {len(urls)} replicas after "
              f"{base_time:.1f} s", flush=True)
        print(f"\nadapter change: median {statistics.median(adapter_times):.2f} s, "
              f"max {max(adapter_times):.2f} s over {len(adapter_times)} rounds; "
              f"base restart: {base_time:.1f} s ({args.replicas} replicas)")


if __name__ == "__main__":
    main()
