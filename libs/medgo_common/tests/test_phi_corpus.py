"""The labelled corpus: the issue's precision and recall targets must hold.

Targets (issue 4): recall >= 0.98 on ID and phone numbers, >= 0.90 on names, and
precision >= 0.90 overall and for every type. The corpus is synthetic (invented
people, checksum-valid IDs) and has a "dev" part the rules were tuned on and a
"heldout" part written afterwards; see docs/benchmarks.md for the figures.
"""

import json
from pathlib import Path

import pytest
from medgo_common.paths import default_data_dir
from medgo_common.phi import PhiType, redact
from medgo_common.phi.evaluation import load_corpus, score

CORPUS = Path(__file__).parent / "data" / "phi_corpus.jsonl"
RECALL_TARGETS = {PhiType.ID_CARD: 0.98, PhiType.PHONE: 0.98, PhiType.NAME: 0.90}


@pytest.fixture(scope="module")
def tallies():
    return score(load_corpus(CORPUS))


def test_corpus_is_large_and_varied() -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    with_phi = [r for r in rows if r["spans"]]
    without_phi = [r for r in rows if not r["spans"]]
    assert len(with_phi) >= 200
    assert len(without_phi) >= 40
    assert len({r["text"] for r in rows}) == len(rows)
    present = {s["type"] for r in rows for s in r["spans"]}
    assert present == {t.value for t in PhiType}
    for row in rows:  # spans must point inside the text and be well-formed
        for span in row["spans"]:
            assert 0 <= span["start"] < span["end"] <= len(row["text"])


@pytest.mark.parametrize(("phi_type", "target"), RECALL_TARGETS.items())
def test_recall_targets(tallies, phi_type: PhiType, target: float) -> None:
    assert tallies[phi_type].recall >= target


@pytest.mark.parametrize("phi_type", [*PhiType, None])
def test_precision_at_least_090(tallies, phi_type: PhiType | None) -> None:
    assert tallies[phi_type].precision >= 0.90


def test_redaction_is_idempotent_on_the_corpus() -> None:
    """Placeholders are never redacted again (records may be re-redacted on replay)."""
    for example in load_corpus(CORPUS):
        once = redact(example.text)
        again = redact(once.text)
        assert (again.text, again.spans) == (once.text, ())
        for span in example.spans:  # no gold PHI survives in the output
            assert example.text[span.start : span.end] not in once.text or span.end - span.start < 3


def test_real_medical_dialogue_is_left_almost_untouched() -> None:
    """Precision on real text: 2,000 Huatuo-26M questions and answers hold almost no PHI.

    Today no span is found in this slice; a rule change that starts eating ordinary
    words (应该, 常见, 和宝宝 after 医生/妈妈, as an early version did) fails here.
    """
    path = default_data_dir() / "corpus/zhongjing/huatuo26M_test_first3000.json"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    rows = json.loads(path.read_text(encoding="utf-8"))[:1000]
    texts = [text for row in rows for text in row["instruction"] + row["output"]]
    found = [text[s.start : s.end] for text in texts for s in redact(text).spans]
    assert len(texts) == 2000
    assert len(found) <= 3, found
