"""ServePlan → the exact vLLM command line and environment (pure; no vLLM started)."""

from __future__ import annotations

from pathlib import Path

from medgo_inference.hardware import Hardware
from medgo_inference.launcher import build_argv, build_env
from medgo_inference.resolve import resolve_plan
from medgo_inference.settings import InferenceSettings

CPU = Hardware(cuda=False, cpu_fast_bf16=False)
A100 = Hardware(cuda=True, cpu_fast_bf16=False)
VLLM = ["py", "-m", "vllm.entrypoints.openai.api_server"]


def flag_values(argv: list[str], flag: str) -> list[str]:
    """The values after `flag` up to the next `--` flag."""
    start = argv.index(flag) + 1
    end = next((i for i in range(start, len(argv)) if argv[i].startswith("--")), len(argv))
    return argv[start:end]


def test_medgo_tiny_on_cpu(tiny_model: Path) -> None:
    s = InferenceSettings(manifest=tiny_model / "serving.json", port=18001)
    argv = build_argv(resolve_plan(s, CPU), s, python="py")

    sft = tiny_model / "medgo-tiny" / "adapters" / "sft"
    assert argv == [
        *VLLM,
        "--model", str(tiny_model / "medgo-tiny" / "base"),
        "--served-model-name", "medgo",
        "--host", "127.0.0.1",
        "--port", "18001",
        "--dtype", "float32",
        "--tensor-parallel-size", "1",
        "--max-num-seqs", "16",
        "--no-enable-log-requests",
        "--middleware", "medgo_inference.probes.ProbeAliasMiddleware",
        "--enable-lora",
        "--max-lora-rank", "16",
        "--max-loras", "2",
        "--lora-modules", f"medgo-tiny-sft={sft}",
    ]  # fmt: skip


def test_qwen72b_on_8_a100(qwen72b_model: Path) -> None:
    stable = qwen72b_model / "adapters" / "medgo-72b-dpo-3f2a9c1"
    s = InferenceSettings(
        host="0.0.0.0",
        base_model=qwen72b_model / "qwen2-72b",
        adapters=f"medgo-72b-dpo-3f2a9c1={stable},medgo-72b-sft={stable}",
        tensor_parallel_size=8,
        max_model_len=8192,
        max_loras=2,
        gpu_memory_utilization=0.92,
    )
    argv = build_argv(resolve_plan(s, A100), s, python="py")

    assert flag_values(argv, "--model") == [str(qwen72b_model / "qwen2-72b")]
    assert flag_values(argv, "--tensor-parallel-size") == ["8"]
    assert flag_values(argv, "--dtype") == ["bfloat16"]
    assert flag_values(argv, "--max-model-len") == ["8192"]
    assert flag_values(argv, "--gpu-memory-utilization") == ["0.92"]
    assert flag_values(argv, "--max-num-seqs") == ["256"]
    assert flag_values(argv, "--max-lora-rank") == ["16"]
    assert flag_values(argv, "--max-loras") == ["2"]
    assert flag_values(argv, "--served-model-name") == ["medgo"]
    assert flag_values(argv, "--host") == ["0.0.0.0"]
    # Manifest order is kept: the first adapter is the default checkpoint.
    assert flag_values(argv, "--lora-modules") == [
        f"medgo-72b-dpo-3f2a9c1={stable}", f"medgo-72b-sft={stable}"
    ]
    assert "--enable-lora" in argv


def test_no_adapters_no_lora_flags(qwen72b_model: Path) -> None:
    s = InferenceSettings(base_model=qwen72b_model / "qwen2-72b", tensor_parallel_size=8)
    argv = build_argv(resolve_plan(s, A100), s, python="py")
    assert not {"--enable-lora", "--lora-modules", "--max-lora-rank"} & set(argv)
    assert "--max-model-len" not in argv  # the model's own limit


def test_extra_args_come_last(tiny_model: Path) -> None:
    s = InferenceSettings(
        manifest=tiny_model / "serving.json", extra_args="--max-num-seqs 4 --seed 7"
    )
    argv = build_argv(resolve_plan(s, CPU), s, python="py")
    assert argv[-4:] == ["--max-num-seqs", "4", "--seed", "7"]


def test_cpu_env_sets_kv_cache_and_binding(tiny_model: Path) -> None:
    s = InferenceSettings(
        manifest=tiny_model / "serving.json", cpu_kvcache_gib=2, cpu_omp_threads_bind="0-1"
    )
    env = build_env(resolve_plan(s, CPU), s, {"PATH": "/usr/bin", "HF_HUB_OFFLINE": "0"})
    assert env == {
        "PATH": "/usr/bin",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CPU_KVCACHE_SPACE": "2",
        "VLLM_CPU_OMP_THREADS_BIND": "0-1",
        "VLLM_ALLOW_RUNTIME_LORA_UPDATING": "True",  # the manifest is followed at run time
    }


def test_api_key_goes_to_vllm_through_the_environment_only(tiny_model: Path) -> None:
    s = InferenceSettings(manifest=tiny_model / "serving.json", api_key="sk-secret")
    plan = resolve_plan(s, CPU)
    assert build_env(plan, s, {"VLLM_API_KEY": "inherited"})["VLLM_API_KEY"] == "sk-secret"
    assert not any("sk-secret" in arg for arg in build_argv(plan, s))
    none = InferenceSettings(manifest=tiny_model / "serving.json", api_key="")
    assert "VLLM_API_KEY" not in build_env(plan, none, {"VLLM_API_KEY": "inherited"})


def test_explicit_checkpoint_is_not_followed(qwen72b_model: Path) -> None:
    s = InferenceSettings(base_model=qwen72b_model / "qwen2-72b")
    plan = resolve_plan(s, A100)
    assert plan.watched_manifest is None
    assert "--enable-lora" not in build_argv(plan, s)
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in build_env(plan, s, {})


def test_gpu_env_has_no_cpu_knobs(qwen72b_model: Path) -> None:
    s = InferenceSettings(base_model=qwen72b_model / "qwen2-72b", tensor_parallel_size=8)
    env = build_env(resolve_plan(s, A100), s, {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"})
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1,2,3,4,5,6,7"
    assert not any(k.startswith("VLLM_CPU_") for k in env)


def test_traces_are_off_by_default(tiny_model: Path) -> None:
    s = InferenceSettings(manifest=tiny_model / "serving.json")
    plan = resolve_plan(s, CPU)
    assert "--otlp-traces-endpoint" not in build_argv(plan, s, python="py")
    assert "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL" not in build_env(plan, s, {})


def test_collector_url_becomes_vllms_otlp_http_traces_endpoint(tiny_model: Path) -> None:
    s = InferenceSettings(
        manifest=tiny_model / "serving.json",
        otlp_traces_endpoint="http://otel-collector.monitoring:4318/",
    )
    plan = resolve_plan(s, CPU)
    argv = build_argv(plan, s, python="py")
    assert flag_values(argv, "--otlp-traces-endpoint") == [
        "http://otel-collector.monitoring:4318/v1/traces"
    ]
    env = build_env(plan, s, {})
    assert env["OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"] == "http/protobuf"
    assert env["OTEL_SERVICE_NAME"] == "medgo-inference"
