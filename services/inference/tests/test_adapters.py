"""Manifest → adapter plan: whole-manifest validation before anything changes, load
before unload, reload in place when a name moves to a new directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_inference.adapters import (
    AdapterSpec,
    ManifestRejected,
    desired_adapters,
    plan_sync,
)

from .conftest import write_adapter


def _manifest(root: Path, *adapters: str, canary: dict | None = None) -> Path:
    data = {
        "checkpoint_id": adapters[0] if adapters else "base",
        "base_model": "medgo-tiny/base",
        "adapters": [{"name": a, "path": f"adapters/{a}"} for a in adapters],
        **({"canary": canary} if canary else {}),
    }
    path = root / "serving.json"
    path.write_text(json.dumps(data))
    return path


def _trained_on(adapter: Path, base: str) -> None:
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps(config | {
        "base_model_name_or_path": base}))


def test_plan_loads_new_reloads_moved_unloads_dropped() -> None:
    desired = (AdapterSpec("b", "/m/b"), AdapterSpec("a", "/m/a2"))
    plan = plan_sync(desired, {"a": "/m/a", "old": "/m/old"})
    assert plan.load == (AdapterSpec("b", "/m/b"),)
    assert plan.reload == (AdapterSpec("a", "/m/a2"),)
    assert plan.unload == ("old",)
    assert plan_sync(desired, {"b": "/m/b", "a": "/m/a2"}).empty


def test_valid_manifest_gives_absolute_specs(tiny_model: Path) -> None:
    base = tiny_model / "medgo-tiny" / "base"
    for name in ("stable", "candidate"):
        _trained_on(write_adapter(tiny_model / "adapters" / name), str(base))
    path = _manifest(tiny_model, "stable", "candidate",
                     canary={"adapter": "candidate", "weight": 0.1})
    specs = desired_adapters(ServingManifest.load(path), path, base, max_lora_rank=16)
    assert [s.name for s in specs] == ["stable", "candidate"]
    assert specs[0].path == str(tiny_model / "adapters" / "stable")


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "does not exist"),
    ("rank", "LoRA rank 64 > max_lora_rank 16"),
    ("base", "was trained on 'Qwen/Qwen2-72B', not on the served base"),
])  # fmt: skip
def test_bad_adapter_rejects_the_whole_manifest(tiny_model: Path, case: str, message: str):
    base = tiny_model / "medgo-tiny" / "base"
    _trained_on(write_adapter(tiny_model / "adapters" / "good"), str(base))
    if case == "rank":
        write_adapter(tiny_model / "adapters" / "bad", rank=64)
    elif case == "base":
        _trained_on(write_adapter(tiny_model / "adapters" / "bad"), "Qwen/Qwen2-72B")
    path = _manifest(tiny_model, "good", "bad")
    with pytest.raises(ManifestRejected, match=message):
        desired_adapters(ServingManifest.load(path), path, base, max_lora_rank=16)


@pytest.mark.parametrize(("canary", "message"), [
    ({"adapter": "c", "weight": 1.5}, "less than or equal to 1"),
    ({"adapter": "c", "weight": -0.1}, "greater than or equal to 0"),
    ({"adapter": "nope", "weight": 0.1}, "'nope' is not one of the manifest's adapters"),
    ({"adapter": "s", "weight": 0.1}, "is the stable adapter"),
])  # fmt: skip
def test_bad_canary_is_refused(tmp_path: Path, canary: dict, message: str) -> None:
    path = _manifest(tmp_path, "s", "c", canary=canary)
    with pytest.raises(ValueError, match=message):
        ServingManifest.load(path)


def test_manifest_without_canary_still_loads(tiny_model: Path) -> None:
    """Files written before the canary existed (the trainer's promote) stay valid."""
    manifest = ServingManifest.load(tiny_model / "serving.json")
    assert manifest.stable_adapter == "medgo-tiny-sft" and manifest.canary_adapter is None
    manifest.save(tiny_model / "again.json")
    assert "canary" not in json.loads((tiny_model / "again.json").read_text())
