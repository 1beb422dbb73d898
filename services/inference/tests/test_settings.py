"""The env forms operators write: `MEDGO_INFERENCE_ADAPTERS=name=path,...`, shell-quoted args."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_inference.settings import InferenceSettings
from pydantic import ValidationError


def test_defaults_are_the_local_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("MANIFEST", "PORT", "HOST", "BASE_MODEL", "ADAPTERS"):
        monkeypatch.delenv(f"MEDGO_INFERENCE_{var}", raising=False)
    s = InferenceSettings()
    assert (s.host, s.port, s.served_model_name) == ("127.0.0.1", 8001, "medgo")
    assert s.manifest.parts[-3:] == ("var", "models", "serving.json")
    assert (s.device, s.dtype, s.max_num_seqs) == ("auto", "auto", None)


def test_env_forms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGO_INFERENCE_ADAPTERS", " sft=/m/a/sft , medgo-72b-dpo-1=/m/a/dpo ")
    monkeypatch.setenv("MEDGO_INFERENCE_EXTRA_ARGS", "--seed 7 --chat-template '/a b/t.jinja'")
    monkeypatch.setenv("MEDGO_INFERENCE_TENSOR_PARALLEL_SIZE", "8")
    s = InferenceSettings()
    assert s.adapters == {"sft": Path("/m/a/sft"), "medgo-72b-dpo-1": Path("/m/a/dpo")}
    assert s.extra_args == ["--seed", "7", "--chat-template", "/a b/t.jinja"]
    assert s.tensor_parallel_size == 8


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("adapters", "sft", "is not `name=path`"),
        ("adapters", "a=/x,a=/y", "appears twice"),
        ("max_lora_rank", 12, "must be one of 1, 8, 16"),
        ("max_num_seqs", 0, "greater than or equal to 1"),
        ("max_num_seqs", 100_000, "less than or equal to 1024"),
        ("gpu_memory_utilization", 1.5, "less than or equal to 1"),
        ("dtype", "int8", "'auto', 'float32', 'bfloat16' or 'float16'"),
    ],
)
def test_bad_values_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InferenceSettings(**{field: value})


def test_the_trainers_serve_request_configures_exactly_these_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The trainer → inference contract (`ServeRequest`): every variable it can produce is
    an `InferenceSettings` field, and the values come back as the trainer meant them."""
    from medgo_common.schemas.serving import ServeRequest

    request = ServeRequest.for_adapters(
        "/models/base", {"medgo-a": "/ckpt/a", "medgo-b": "/ckpt/b"}, ranks=[16, 24],
        settings={"max_model_len": "512", "tensor_parallel_size": "8"})
    env = request.to_env()
    fields = {f"MEDGO_INFERENCE_{name.upper()}" for name in InferenceSettings.model_fields}
    assert set(env) <= fields, set(env) - fields
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = InferenceSettings()
    assert settings.base_model == Path("/models/base")
    assert settings.adapters == {"medgo-a": Path("/ckpt/a"), "medgo-b": Path("/ckpt/b")}
    assert settings.max_lora_rank == 32  # 24 rounded up to a rank vLLM accepts
    assert (settings.max_model_len, settings.tensor_parallel_size) == (512, 8)
    with pytest.raises(ValueError, match="exceeds vLLM's largest"):
        ServeRequest.for_adapters("/models/base", {"x": "/x"}, ranks=[1024])
