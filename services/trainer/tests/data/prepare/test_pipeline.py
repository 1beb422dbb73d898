"""prepare: each filter removes what it should, shards hold the rest, PHI never survives."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from medgo_common.paths import default_data_dir
from medgo_trainer.data.prepare.clean import CorpusFormatError, read_documents
from medgo_trainer.data.prepare.pipeline import PrepareConfig, prepare_corpus
from medgo_trainer.data.prepare.scaleout import ScaleOutConfig, prepare_corpus_datatrove


def test_each_step_removes_what_it_should(corpus: Path, tmp_path: Path, shard_rows) -> None:
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
    rows = shard_rows(out)
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


def test_parallel_run_gives_the_same_shards(corpus: Path, tmp_path: Path, shard_rows) -> None:
    one = prepare_corpus([corpus], tmp_path / "one", PrepareConfig(workers=1, batch_docs=3))
    two = prepare_corpus([corpus], tmp_path / "two", PrepareConfig(workers=2, batch_docs=3))
    assert one.snapshot_sha256 == two.snapshot_sha256
    assert shard_rows(tmp_path / "one") == shard_rows(tmp_path / "two")


ENGINES = {
    "local": lambda src, out: prepare_corpus(src, out, PrepareConfig()),
    "datatrove": lambda src, out: prepare_corpus_datatrove(
        src, out, ScaleOutConfig(tasks=2, workers=1)),
}


@pytest.mark.parametrize("engine", ENGINES)
def test_malformed_file_is_a_clear_error_and_writes_nothing(
        engine: str, tmp_path: Path, long_text: str) -> None:
    src = tmp_path / "raw"
    src.mkdir()
    (src / "ok.jsonl").write_text(json.dumps({"text": long_text}, ensure_ascii=False) + "\n")
    (src / "zz.jsonl").write_text('{"text": "broken\n')
    out = tmp_path / "out"
    with pytest.raises(CorpusFormatError, match=r"zz.jsonl:1: invalid JSON line"):
        ENGINES[engine]([src], out)
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


def test_nested_chat_records_keep_their_text() -> None:
    """ShareGPT turns and Huatuo's list-valued fields are text, not dropped as empty."""
    corpus = default_data_dir() / "corpus"
    sharegpt = next(read_documents(corpus / "medicalgpt/medical_sft_1K_format.jsonl"))
    first = json.loads(
        (corpus / "medicalgpt/medical_sft_1K_format.jsonl").read_text(encoding="utf-8")
        .splitlines()[0])
    turns = [turn["value"] for turn in first["conversations"]]
    assert sharegpt.text == "\n".join(turns)  # the texts, without the "human"/"gpt" labels
    huatuo = next(read_documents(corpus / "zhongjing/huatuo26M_test_first3000.json"))
    assert huatuo.text.startswith("做了腰间盘穿丁手术后") and "问题分析" in huatuo.text
