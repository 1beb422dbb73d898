"""registry: lineage, the gate decides, promote writes the manifest and retires the old one."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_trainer.evaluation.gate import GateDecision
from medgo_trainer.training.promotion import EVAL_REPORT, report_gate
from medgo_trainer.training.registry import (
    Checkpoint,
    GateFailedError,
    Registry,
    RegistryError,
    Status,
    UnknownCheckpointError,
)


def _passing(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
    return GateDecision(passed=True, reasons=[f"{candidate.id} vs {baseline and baseline.id}"])


def _register(reg: Registry, cid: str, parent: str | None = None, **metrics: float) -> Checkpoint:
    return reg.register(
        checkpoint_id=cid,
        parent=parent,
        base="/models/base",
        stage="dpo" if parent else "sft",
        path=Path(f"/models/{cid}"),
        data_sha256="ab" * 32,
        recipe={"stage": "dpo", "trl": {"beta": 0.1}},
        metrics=metrics,
    )


def test_register_records_lineage(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _register(reg, "medgo-tiny-sft", loss=1.5)
    _register(reg, "medgo-tiny-dpo-1", parent="medgo-tiny-sft", loss=0.6)

    again = Registry(tmp_path).get("medgo-tiny-dpo-1")  # a fresh handle reads the same file
    assert again.status is Status.candidate
    assert again.recipe == {"stage": "dpo", "trl": {"beta": 0.1}}
    assert again.metrics == {"loss": 0.6}
    assert [c.id for c in reg.lineage("medgo-tiny-dpo-1")] == ["medgo-tiny-dpo-1", "medgo-tiny-sft"]
    assert [c.id for c in reg.checkpoints()] == ["medgo-tiny-sft", "medgo-tiny-dpo-1"]


def test_register_refuses_duplicates_unknown_parents_and_bad_names(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _register(reg, "a")
    with pytest.raises(RegistryError, match="already registered"):
        _register(reg, "a")
    with pytest.raises(UnknownCheckpointError, match="parent checkpoint 'nope'"):
        _register(reg, "b", parent="nope")
    with pytest.raises(ValueError, match="name"):
        _register(reg, "has space")
    assert [c.id for c in reg.checkpoints()] == ["a"]
    with pytest.raises(UnknownCheckpointError, match="unknown checkpoint 'zzz'"):
        reg.get("zzz")


def test_promote_writes_manifest_and_retires_previous(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    manifest = tmp_path / "serving.json"
    _register(reg, "sft")
    _register(reg, "dpo-1", parent="sft")

    reg.promote("sft", gate=_passing, manifest_path=manifest)
    assert ServingManifest.load(manifest).checkpoint_id == "sft"
    promoted = reg.promote("dpo-1", gate=_passing, manifest_path=manifest)

    assert promoted.status is Status.promoted
    assert reg.get("sft").status is Status.retired
    served = ServingManifest.load(manifest)
    assert served.checkpoint_id == "dpo-1"
    assert served.base_model == "/models/base"
    assert [(a.name, a.path) for a in served.adapters] == [("dpo-1", "/models/dpo-1")]


def test_gate_sees_the_baseline_and_a_failure_changes_nothing(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    manifest = tmp_path / "serving.json"
    _register(reg, "sft", accuracy=0.5)
    _register(reg, "dpo-1", parent="sft", accuracy=0.4)
    reg.promote("sft", gate=_passing, manifest_path=manifest)
    before = manifest.read_bytes()

    def no_regression(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        assert baseline is not None
        ok = candidate.metrics["accuracy"] >= baseline.metrics["accuracy"]
        return GateDecision(passed=ok, reasons=[] if ok else ["accuracy 0.4 < baseline 0.5"])

    with pytest.raises(GateFailedError, match=r"accuracy 0\.4 < baseline 0\.5"):
        reg.promote("dpo-1", gate=no_regression, manifest_path=manifest)
    assert reg.get("dpo-1").status is Status.candidate
    assert reg.get("sft").status is Status.promoted
    assert manifest.read_bytes() == before


def test_failed_manifest_write_rolls_back_the_status_change(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    _register(reg, "sft")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the manifest's directory should be")
    with pytest.raises(OSError):
        reg.promote("sft", gate=_passing, manifest_path=blocker / "serving.json")
    assert reg.get("sft").status is Status.candidate
    assert reg.promoted() is None


def test_report_gate_needs_the_candidates_evaluation(tmp_path: Path) -> None:
    reg = Registry(tmp_path)
    ckpt = reg.register(checkpoint_id="sft", base="/b", stage="sft", path=tmp_path / "sft",
                        data_sha256="0" * 64, recipe={})
    with pytest.raises(GateFailedError, match="no evaluation report for sft"):
        reg.promote("sft", gate=report_gate(), manifest_path=tmp_path / "serving.json")
    (tmp_path / "sft").mkdir()
    (tmp_path / "sft" / EVAL_REPORT).write_text("{}")
    promoted = reg.promote(ckpt.id, gate=report_gate(), manifest_path=tmp_path / "serving.json")
    assert promoted.status is Status.promoted  # first promotion: nothing to regress from
