"""Corpus metrics and the generation metrics, checked against hand-computed values."""

from __future__ import annotations

import math

import pytest
from medgo_trainer.evaluation.generation import bleu_unit, entity_unit, rouge_l, rouge_n, tokens
from medgo_trainer.evaluation.metrics import aggregate, f1, set_unit


def test_f1_from_counts() -> None:
    # P = 2/4, R = 2/3 -> F1 = 2*0.5*0.6667/(1.1667) = 4/7
    assert f1(2, 4, 3) == pytest.approx(4 / 7)
    assert f1(0, 0, 3) == 0.0  # empty prediction
    assert f1(0, 2, 0) == 0.0  # nothing to find
    assert f1(0, 2, 2) == 0.0


def test_set_unit_counts_duplicates_once() -> None:
    assert set_unit(["a", "a", "b"], ["a", "c"]) == [1, 2, 2]
    assert set_unit([], ["a"]) == [0, 0, 1]


def test_micro_f1_pools_counts_over_examples() -> None:
    # ex1: tp 1, pred 2, gold 1; ex2: tp 1, pred 1, gold 3 -> P 2/3, R 2/4 -> F1 4/7
    units = [[1, 2, 1], [1, 1, 3]]
    assert aggregate("micro_f1", units) == pytest.approx(100 * 4 / 7)


def test_macro_f1_averages_gold_and_predicted_labels() -> None:
    # gold/pred: a/a, a/b, b/b, b/None (unparseable), b/c (c is never gold)
    # a: tp1 pred1 gold2 -> 2/3 ; b: tp1 pred2 gold3 -> 2/5 ; c: tp0 pred1 gold0 -> 0
    units = [["a", "a"], ["a", "b"], ["b", "b"], ["b", None], ["b", "c"]]
    assert aggregate("macro_f1", units) == pytest.approx(100 * (2 / 3 + 2 / 5 + 0) / 3)


def test_accuracy_and_empty() -> None:
    assert aggregate("accuracy", [1.0, 0.0, 1.0, 1.0]) == 75.0
    assert aggregate("accuracy", []) == 0.0
    with pytest.raises(ValueError, match="unknown metric kind"):
        aggregate("nope", [1.0])


def test_rouge_on_characters() -> None:
    assert tokens("高 血压\n") == ["高", "血", "压"]
    # hyp 高血压病 vs ref 原发性高血压: unigram overlap 3, P 3/4, R 3/6 -> 0.6
    assert rouge_n("高血压病", "原发性高血压", 1) == pytest.approx(0.6)
    # bigrams: hyp {高血, 血压, 压病}, ref {原发, 发性, 性高, 高血, 血压}: 2 -> P 2/3 R 2/5
    assert rouge_n("高血压病", "原发性高血压", 2) == pytest.approx(0.5)
    # LCS(ABCBDAB, BDCABA) = 4 -> P 4/7, R 4/6
    assert rouge_l("ABCBDAB", "BDCABA") == pytest.approx(2 * (4 / 7) * (4 / 6) / (4 / 7 + 4 / 6))
    assert rouge_l("", "高血压") == 0.0


def test_bleu_unit_and_corpus_bleu() -> None:
    unit = bleu_unit("ABCD", "ABCE")
    # 1-grams 3/4, 2-grams 2/3, 3-grams 1/2, 4-grams 0/1
    assert unit == [3, 2, 1, 0, 4, 3, 2, 1, 4, 4]
    assert aggregate("bleu", [unit]) == 0.0  # no 4-gram match, no smoothing
    perfect = bleu_unit("ABCDE", "ABCDE")
    assert aggregate("bleu", [perfect]) == pytest.approx(100.0)
    # identical 5-char text against a 10-char reference: brevity penalty exp(1 - 10/5)
    short = bleu_unit("ABCDE", "ABCDEFGHIJ")
    assert aggregate("bleu", [short]) == pytest.approx(100 * math.exp(-1))


def test_entity_f1_for_dialogue() -> None:
    vocabulary = ["胃炎", "奥美拉唑", "胃镜", "幽门螺杆菌"]
    unit = entity_unit("可能是胃炎，建议做胃镜", "考虑胃炎，可服用奥美拉唑，并做胃镜", vocabulary)
    assert unit == [2, 2, 3]
    assert aggregate("micro_f1", [unit]) == pytest.approx(100 * 0.8)


def test_bleu_clips_repeated_ngrams_and_handles_empty_output() -> None:
    # "AAAA" vs "AB": unigram A matched once (clipped), 4 unigrams; no bigram match
    assert bleu_unit("AAAA", "AB")[:2] == [1, 0]
    assert bleu_unit("AAAA", "AB")[4:6] == [4, 3]
    assert aggregate("bleu", [bleu_unit("", "高血压")]) == 0.0
    # ROUGE-1 clips the same way: overlap 1, P 1/4, R 1/2
    assert rouge_n("AAAA", "AB", 1) == pytest.approx(2 * 0.25 * 0.5 / 0.75)
