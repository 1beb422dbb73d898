"""build-sft end to end on the shared data: outputs, datasheet, PHI scrub, determinism."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from medgo_trainer.cli import main
from medgo_trainer.data.sft.build import build_mixture
from medgo_trainer.data.sft.leakage import LeakageGuard
from medgo_trainer.data.sft.mixture import load_mixture
from medgo_trainer.data.sft.review import Candidate, ReviewQueue

SMALL = {
    "seed": 7,
    "sources": [
        {"name": "drugs", "weight": 1.5, "max_examples": 40},
        {"name": "dialogues", "max_examples": 50,
         "options": {"files": ["toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv"]}},
        {"name": "complaints", "max_examples": 20},
        {"name": "cblue", "weight": 0.5, "max_examples": 40,
         "options": {"tasks": ["kuake-qic", "chip-cdn"]}},
    ],
}


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.open(encoding="utf-8")]


@pytest.fixture(scope="module")
def built(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    recipe = tmp_path_factory.mktemp("recipe") / "small.yaml"
    recipe.write_text(json.dumps(SMALL), encoding="utf-8")  # JSON is YAML
    out = tmp_path_factory.mktemp("sft") / "out"
    assert main(["build-sft", "--mixture", str(recipe), "--out", str(out),
                 "--data-dir", str(data_dir)]) == 0
    return out


def test_outputs_and_datasheet_agree(built: Path) -> None:
    rows, provenance = _rows(built / "sft.jsonl"), _rows(built / "provenance.jsonl")
    sheet = json.loads((built / "datasheet.json").read_text(encoding="utf-8"))
    assert len(rows) == len(provenance) == sheet["examples"]
    assert all(set(r) == {"messages"} and r["messages"][0]["role"] == "user" for r in rows)
    assert sheet["per_source"] == {"drugs": 60, "dialogues": 50, "complaints": 20, "cblue": 20}
    assert sheet["per_source"] == dict(Counter(p["source"] for p in provenance))
    assert sheet["synthetic"] == 80 == sum(p["synthetic"] for p in provenance)
    assert set(sheet["per_task"]) >= {"drugs/drug-indications", "complaints/chief-complaint"}
    assert sheet["removed"]["built"]["drugs"] == 282
    assert sheet["removed"]["examined"]["cblue"] >= 40
    assert sheet["chars"]["user"]["min"] > 0 and sheet["chars"]["turns"]["min"] == 2
    licences = {s: {f["license"] for f in files} for s, files in sheet["sources"].items()}
    assert any("GPL-3.0" in lic for lic in licences["drugs"])
    assert any(lic.startswith("MIT") for lic in licences["dialogues"])
    assert "examples_changed" in sheet["phi_scrub"]
    assert "| drugs/drug-indications |" in (built / "DATASHEET.md").read_text(encoding="utf-8")
    metrics = json.loads((built / "metrics.json").read_text())["metrics"]  # written last
    assert metrics["examples"] == len(rows)
    assert metrics["examined"] == sum(sheet["removed"]["examined"].values())


def test_same_seed_same_bytes_other_seed_other_order(
        built: Path, data_dir: Path, tmp_path: Path, guard: LeakageGuard,
        write_mixture: Callable[[dict], Path]) -> None:
    again = build_mixture(load_mixture(write_mixture(SMALL)), data_dir, tmp_path / "again",
                          guard=guard)
    assert (tmp_path / "again/sft.jsonl").read_bytes() == (built / "sft.jsonl").read_bytes()
    assert again["per_source"]["drugs"] == 60
    other = build_mixture(load_mixture(write_mixture({**SMALL, "seed": 8})), data_dir,
                          tmp_path / "other", guard=guard)
    assert other["per_source"] == again["per_source"]
    assert (tmp_path / "other/sft.jsonl").read_bytes() != (built / "sft.jsonl").read_bytes()


def test_phi_is_scrubbed_and_counted(data_dir: Path, tmp_path: Path, guard: LeakageGuard,
                                     write_mixture: Callable[[dict], Path]) -> None:
    queue = ReviewQueue(tmp_path / "q.sqlite3", create=True)
    phone, idcard = "13812345678", "11010519491231002X"
    queue.add([Candidate("phi", "段落", f"我的电话是{phone}，身份证{idcard}，头痛怎么办？",
                         "建议休息并监测血压。", "m")])
    queue.decide("phi", "approve", "dr.test")
    recipe = write_mixture({"sources": [{"name": "guidelines",
                                         "options": {"queue": str(queue.path)}}]})
    sheet = build_mixture(load_mixture(recipe), data_dir, tmp_path / "out", guard=guard)
    written = (tmp_path / "out/sft.jsonl").read_text(encoding="utf-8")
    assert phone not in written and idcard not in written
    assert "[电话]" in written and "[身份证号]" in written
    assert sheet["phi_scrub"]["examples_changed"] == 1


def test_out_dir_must_be_empty(data_dir: Path, built: Path,
                               write_mixture: Callable[[dict], Path]) -> None:
    before = (built / "sft.jsonl").read_bytes()
    with pytest.raises(FileExistsError, match="not empty"):
        build_mixture(load_mixture(write_mixture(SMALL)), data_dir, built)
    assert (built / "sft.jsonl").read_bytes() == before
