"""Every classification metric against scikit-learn on random inputs (hypothesis), and
bootstrap replicates scored by the same metric as the report."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from medgo_trainer.evaluation.metrics import aggregate, set_unit, sufficient_stats
from sklearn.metrics import accuracy_score, f1_score
from sklearn.preprocessing import MultiLabelBinarizer

LABELS = st.sampled_from(["0", "1", "2", "3", "4", "5"])
PAIRS = st.lists(st.tuples(LABELS, LABELS), min_size=1, max_size=60)


@settings(max_examples=80, deadline=None)
@given(PAIRS)
def test_macro_f1_is_sklearns_macro(pairs: list[tuple[str, str]]) -> None:
    gold, pred = zip(*pairs, strict=True)
    expected = 100 * f1_score(gold, pred, average="macro", zero_division=0)
    assert aggregate("macro_f1", [list(p) for p in pairs]) == pytest.approx(expected)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(LABELS, st.one_of(st.none(), LABELS)), min_size=1, max_size=60))
def test_unparseable_predictions_are_misses_not_a_class(
    pairs: list[tuple[str, str | None]],
) -> None:
    gold = [g for g, _ in pairs]
    pred = [p if p is not None else "<none>" for _, p in pairs]
    labels = sorted(set(gold) | {p for _, p in pairs if p is not None})
    expected = 100 * f1_score(gold, pred, labels=labels, average="macro", zero_division=0)
    assert aggregate("macro_f1", [list(p) for p in pairs]) == pytest.approx(expected)


@settings(max_examples=80, deadline=None)
@given(PAIRS)
def test_accuracy_is_sklearns(pairs: list[tuple[str, str]]) -> None:
    gold, pred = zip(*pairs, strict=True)
    units = [float(g == p) for g, p in pairs]
    assert aggregate("accuracy", units) == pytest.approx(100 * accuracy_score(gold, pred))


ITEMS = st.frozensets(st.sampled_from("abcdefgh"), max_size=5)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(ITEMS, ITEMS), min_size=1, max_size=30))
def test_micro_f1_is_sklearns_micro(sets: list[tuple[frozenset[str], frozenset[str]]]) -> None:
    binarizer = MultiLabelBinarizer(classes=list("abcdefgh"))
    gold = binarizer.fit_transform([g for g, _ in sets])
    pred = binarizer.transform([p for _, p in sets])
    expected = 100 * f1_score(gold, pred, average="micro", zero_division=0)
    assert aggregate("micro_f1", [set_unit(p, g) for g, p in sets]) == pytest.approx(expected)


@settings(max_examples=50, deadline=None)
@given(PAIRS, st.randoms(use_true_random=False))
def test_a_bootstrap_replicate_is_the_metric_of_the_resample(pairs, rnd) -> None:
    units = [list(p) for p in pairs]
    stats, finish = sufficient_stats("macro_f1", units)
    draw = [rnd.randrange(len(units)) for _ in units]
    counts = np.bincount(draw, minlength=len(units)).astype(float)
    resample = [units[i] for i in draw]
    assert 100 * finish(counts @ stats) == pytest.approx(aggregate("macro_f1", resample))
