"""prepare: each filter removes what it should, shards hold the rest, PHI never survives."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from medgo_common.paths import default_data_dir
from medgo_trainer.prepare.clean import CorpusFormatError, read_documents
from medgo_trainer.prepare.pipeline import PrepareConfig, prepare_corpus

LONG = (
    "高血压患者应当长期规律服用降压药物，定期监测血压，低盐低脂饮食，适量运动，"
    "戒烟限酒，保持情绪稳定，如出现头晕头痛胸闷等症状应及时就医复诊。"
)


def _kept(out: Path) -> list[dict]:
    rows = []
    for shard in sorted(out.glob("part-*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
    return rows


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "raw"
    src.mkdir()
    records = [
        {"问": "高血压怎么办？", "答": LONG},  # kept
        {"问": "高血压怎么办？", "答": LONG},  # exact duplicate
        {"问": "高血压怎么办？", "答": LONG.replace("适量运动", "适当运动")},  # near duplicate
        {"问": "短", "答": "太短"},  # length
        {"问": "What is hypertension?", "答": "High blood pressure " * 5},  # language
        {"问": "点击查看更多", "答": "版权所有 某某网站"},  # boilerplate only
        {"text": "患者张三，男，45岁，电话13812345678，空腹血糖偏高，需调整胰岛素剂量并复查。"},
        {"text": "ＡＢＣ试验阳性提示感染，建议结合临床症状与血常规结果综合判断，必要时治疗。"},
    ]
    (src / "a.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
    )
    with (src / "b.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["department", "title", "ask", "answer"])
        writer.writeheader()
        row = {"department": "心内科", "title": "胸闷", "ask": "气短", "answer": LONG[::-1]}
        writer.writerow(row)
    gastritis = "慢性胃炎需要规律饮食，避免辛辣刺激食物，必要时胃镜检查。"
    (src / "c.txt").write_text(f"版权所有\n\n{gastritis}\n")
    return src


def test_each_step_removes_what_it_should(corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    report = prepare_corpus([corpus], out, PrepareConfig())

    removed = {k: v.docs for k, v in report.removed.items()}
    assert removed == {
        "boilerplate": 2,  # the chrome-only record and the txt line "版权所有"
        "length": 1,
        "language": 1,
        "deid_error": 0,
        "exact_dup": 1,
        "near_dup": 1,
    }
    assert report.input.docs == 11
    assert report.kept.docs == 5
    rows = _kept(out)
    assert [r["source"] for r in rows] == ["a.jsonl", "a.jsonl", "a.jsonl", "b.csv", "c.txt"]
    texts = "\n".join(r["text"] for r in rows)
    # PHI scrubbed, NFKC applied, labels (department) not part of the text.
    assert "张三" not in texts and "13812345678" not in texts
    assert "ABC试验" in texts and "ＡＢＣ" not in texts
    assert "心内科" not in texts
    assert sum(report.phi_replaced.values()) >= 2
    saved = json.loads((out / "report.json").read_text())
    assert saved["kept"]["docs"] == 5 and saved["snapshot_sha256"] == report.snapshot_sha256
    assert not list(out.glob(".prepare-*"))


def test_parallel_run_gives_the_same_shards(corpus: Path, tmp_path: Path) -> None:
    one = prepare_corpus([corpus], tmp_path / "one", PrepareConfig(workers=1, batch_docs=3))
    two = prepare_corpus([corpus], tmp_path / "two", PrepareConfig(workers=2, batch_docs=3))
    assert one.snapshot_sha256 == two.snapshot_sha256
    assert _kept(tmp_path / "one") == _kept(tmp_path / "two")


def test_malformed_file_is_a_clear_error_and_writes_nothing(tmp_path: Path) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    (src / "ok.jsonl").write_text(json.dumps({"text": LONG}, ensure_ascii=False) + "\n")
    (src / "zz.jsonl").write_text('{"text": "broken\n')
    out = tmp_path / "out"
    with pytest.raises(CorpusFormatError, match=r"zz.jsonl:1: invalid JSON line"):
        prepare_corpus([src], out, PrepareConfig())
    assert list(out.iterdir()) == []


def test_unsupported_format_and_missing_input(tmp_path: Path) -> None:
    bad = tmp_path / "corpus.xlsx"
    bad.write_bytes(b"PK")
    with pytest.raises(CorpusFormatError, match="unsupported corpus format"):
        list(read_documents(bad))
    with pytest.raises(CorpusFormatError, match="no such corpus file"):
        prepare_corpus([tmp_path / "missing"], tmp_path / "out", PrepareConfig())


def test_reads_the_bundled_corpus_formats() -> None:
    corpus = default_data_dir() / "corpus"
    dialogue = corpus / "toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv"
    csv_docs = list(read_documents(dialogue))
    txt_docs = list(read_documents(corpus / "medicalgpt/medical_corpus.txt"))
    assert len(csv_docs) > 100 and all(d.text for d in csv_docs)
    assert txt_docs[0].text.startswith("肛门病变")  # a JSON line read as a record, not raw JSON
