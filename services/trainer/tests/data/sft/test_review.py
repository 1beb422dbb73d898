"""Guideline QA: generation into the review queue (real vLLM), the reviewer CLI on stdin."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from pathlib import Path

import pytest
from medgo_trainer.cli import main
from medgo_trainer.data.sft import drugs, guidelines
from medgo_trainer.data.sft.example import SourceError
from medgo_trainer.data.sft.llm import Endpoint
from medgo_trainer.data.sft.review import Candidate, ReviewQueue


@pytest.fixture
def passages(data_dir: Path, tmp_path: Path) -> Path:
    """Two real label passages (standing in for guideline paragraphs), blank-line separated."""
    with (data_dir / drugs.FILES[0].path).open(encoding="utf-8", newline="") as fh:
        rows = [r for _, r in zip(range(2), csv.DictReader(fh), strict=False)]
    path = tmp_path / "passages.txt"
    path.write_text("\n\n".join(drugs.label_text(r["药品适应症"]) for r in rows) + "\n",
                    encoding="utf-8")
    return path


def _queue(tmp_path: Path, n: int = 3) -> ReviewQueue:
    queue = ReviewQueue(tmp_path / "review.sqlite3", create=True)
    queue.add([Candidate(f"c{i}", f"段落{i}", f"问题{i}？", f"答案{i}。", "medgo")
               for i in range(n)])
    return queue


def test_parse_pair() -> None:
    assert guidelines.parse_pair("问题：什么是痛经？\n答案：经期下腹疼痛。") == (
        "什么是痛经？", "经期下腹疼痛。")
    assert guidelines.parse_pair("痛经是经期疼痛。") is None


def test_queue_is_idempotent_and_decides_once(tmp_path: Path) -> None:
    queue = _queue(tmp_path)
    assert queue.add([Candidate("c0", "x", "y", "z", "m")]) == 0
    queue.decide("c0", "reject", "dr.a")
    with pytest.raises(SourceError, match="not pending"):
        queue.decide("c0", "approve", "dr.b")
    assert queue.counts() == {"pending": 2, "rejected": 1}


def test_reviewer_cli_records_approve_reject_edit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    queue = _queue(tmp_path, 4)
    # c0 approve; c1: an unknown key is asked again, then reject; c2 edit the answer only;
    # c3 skipped by quitting.
    answers = "a\nx\nr\ne\n\n改过的答案。\nq\n"
    monkeypatch.setattr("sys.stdin", io.StringIO(answers))
    assert main(["sft-review", "--queue", str(queue.path), "--reviewer", "dr.wang"]) == 0
    out = capsys.readouterr().out
    assert "问题0？" in out and "段落2" in out
    result = json.loads(out[out.index("{\n"):])
    assert result["decided"] == {"approve": 1, "reject": 1, "edit": 1, "skip": 0}
    assert [(c.id, c.question, c.answer) for c in queue.approved()] == [
        ("c0", "问题0？", "答案0。"), ("c2", "问题2？", "改过的答案。")]
    with sqlite3.connect(queue.path) as db:
        rows = db.execute("SELECT id, status, edited, reviewer FROM candidates ORDER BY id")
        assert rows.fetchall() == [("c0", "approved", 0, "dr.wang"), ("c1", "rejected", 0,
                                   "dr.wang"), ("c2", "approved", 1, "dr.wang"),
                                   ("c3", "pending", 0, None)]


def test_guidelines_source_needs_an_approved_pair(tmp_path: Path) -> None:
    queue = _queue(tmp_path, 1)
    with pytest.raises(SourceError, match="no approved pair"):
        guidelines.check(tmp_path, {"queue": str(queue.path)})
    with pytest.raises(SourceError, match="does not exist"):
        guidelines.check(tmp_path, {"queue": str(tmp_path / "none.sqlite3")})
    not_sqlite = tmp_path / "pairs.jsonl"
    not_sqlite.write_text('{"question": "q"}\n' * 50, encoding="utf-8")
    with pytest.raises(SourceError, match="not a usable SQLite file"):
        guidelines.check(tmp_path, {"queue": str(not_sqlite)})
    assert not_sqlite.read_text(encoding="utf-8").startswith('{"question"')


def test_generate_with_real_vllm(vllm_server: str, medgo_tiny, passages: Path,
                                 tmp_path: Path) -> None:
    """Two generations on medgo-tiny: every reply is queued as a pending candidate or
    counted as unparsed, and queued pairs quote what the model wrote."""
    queue = ReviewQueue(tmp_path / "review.sqlite3", create=True)
    endpoint = Endpoint(vllm_server, model=medgo_tiny.adapter_name)
    result = guidelines.generate(guidelines.read_passages(passages), endpoint, queue,
                                 max_tokens=96)
    assert result["passages"] == 2
    assert result["queued"] + result["unparsed"] == 2
    pending = queue.pending()
    assert len(pending) == result["queued"]
    assert all(c.model == medgo_tiny.adapter_name and c.question and c.answer for c in pending)
    assert queue.approved() == []  # nothing generated enters a mixture unreviewed


def test_paraphrase_keeps_the_label_answer(vllm_server: str, medgo_tiny,
                                           data_dir: Path) -> None:
    example = next(drugs.build(data_dir, {}))
    reworded = drugs.paraphrase(example, Endpoint(vllm_server, model=medgo_tiny.adapter_name))
    assert reworded.messages[1] == example.messages[1]
    assert reworded.messages[0]["content"]


def test_unreachable_endpoint_is_a_clear_error(passages: Path, tmp_path: Path) -> None:
    queue = ReviewQueue(tmp_path / "review.sqlite3", create=True)
    with pytest.raises(SourceError, match=r"LLM endpoint .* failed"):
        guidelines.generate(guidelines.read_passages(passages),
                            Endpoint("http://127.0.0.1:9", timeout_s=2), queue)
    assert queue.counts() == {}
