"""Corpus-level metrics rebuilt from per-example units.

Every task scores each example into a small JSON-able *unit* and the report keeps
those units. Each metric kind turns units into per-example sufficient statistics
whose column sums determine the corpus score, so a score is ``finish(U.sum(0))``,
and a bootstrap replicate is ``finish(counts @ U)``: one matrix product instead of
re-scoring every resample. Scores are percentages (0-100), as in the paper's Table 1.

Unit shapes per metric kind:
- ``accuracy`` / ``mean``: a float in [0, 1] (1 = correct / refused / ...).
- ``micro_f1``: ``[true_positives, n_predicted, n_gold]`` over deduplicated sets.
- ``macro_f1``: ``[gold_label, predicted_label]`` (predicted may be ``None``).
- ``bleu``: ``[m1..m4, t1..t4, hyp_len, ref_len]`` n-gram matches and totals.
- ``text2dt``: the twelve counts of `text2dt.TREE_COUNTS` (tree match, triples, paths,
  edit distance, nodes); the headline is tree accuracy, `all_scores` gives the rest.

Bootstrap replicates reuse the same ``finish``, so an interval is always an interval
of the metric the report prints (macro-F1's classes are re-derived per replicate).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy as np

MetricKind = str
KINDS: tuple[MetricKind, ...] = ("accuracy", "mean", "micro_f1", "macro_f1", "bleu", "text2dt")
Finish = Callable[[np.ndarray], float]  # column sums -> score in [0, 1]


def f1(tp: float, n_pred: float, n_gold: float) -> float:
    """F1 from counts; 0 when either side is empty (nothing right to count)."""
    if n_pred == 0 or n_gold == 0 or tp == 0:
        return 0.0
    precision, recall = tp / n_pred, tp / n_gold
    return 2 * precision * recall / (precision + recall)


def set_unit(predicted: Iterable[Hashable], gold: Iterable[Hashable]) -> list[int]:
    """The micro-F1 unit of one example: duplicates count once, as CBLUE's scorer does."""
    pred, ref = set(predicted), set(gold)
    return [len(pred & ref), len(pred), len(ref)]


def _mean(sums: np.ndarray) -> float:
    return float(sums[0] / sums[1]) if sums[1] else 0.0


def _micro_f1(sums: np.ndarray) -> float:
    return f1(*(float(s) for s in sums))


def _bleu(sums: np.ndarray) -> float:
    """Corpus BLEU-4 (Papineni et al. 2002): geometric mean of the clipped n-gram
    precisions summed over the corpus, times the brevity penalty. No smoothing, so
    any n-gram order with zero matches gives 0, as in the original definition."""
    matches, totals = sums[0:4], sums[4:8]
    hyp_len, ref_len = float(sums[8]), float(sums[9])
    if hyp_len == 0 or (matches == 0).any() or (totals == 0).any():
        return 0.0
    log_precision = float(np.log(matches / totals).mean())
    brevity = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return brevity * math.exp(log_precision)


def _macro_f1_stats(units: Sequence[Any]) -> tuple[np.ndarray, Finish]:
    """Per label c, columns (tp_c, pred_c, gold_c); the score is the mean F1 over every
    label that occurs as gold *or* prediction, which is sklearn's ``average="macro"``
    (its labels are ``unique_labels(y_true, y_pred)``) and what CBLUE's scorer uses.
    An unparseable reply (None) is no label: a miss for its gold class, not a class of
    its own (sklearn with ``labels=`` the gold ∪ parsed predictions gives the same)."""
    labels = sorted({str(g) for g, _ in units} | {str(p) for _, p in units if p is not None})
    column = {label: i for i, label in enumerate(labels)}
    stats = np.zeros((len(units), 3 * len(labels)))
    for row, (gold, pred) in enumerate(units):
        g = column[str(gold)]
        stats[row, 3 * g + 2] = 1
        if pred is not None:
            p = column[str(pred)]
            stats[row, 3 * p + 1] = 1
            stats[row, 3 * p] = float(p == g)

    def finish(sums: np.ndarray) -> float:
        s = sums.tolist()  # plain floats: far faster than numpy scalars in this loop
        present = [f1(*s[i : i + 3]) for i in range(0, len(s), 3) if s[i + 1] or s[i + 2]]
        return sum(present) / len(present) if present else 0.0

    return stats, finish


def _tree_accuracy(sums: np.ndarray) -> float:
    return float(sums[0] / sums[1]) if sums[1] else 0.0


def all_scores(kind: MetricKind, units: Sequence[Any]) -> dict[str, float]:
    """Every figure a metric family reports (Text2DT's five); {} for one-number kinds."""
    if kind != "text2dt" or not len(units):
        return {}
    s = np.array(units, dtype=float).reshape(-1, 12).sum(axis=0)
    trees = float(s[1])
    return {
        "tree_accuracy": 100.0 * _tree_accuracy(s),
        "triple_f1": 100.0 * f1(*map(float, s[2:5])),
        "path_f1": 100.0 * f1(*map(float, s[5:8])),
        "edit_distance": float(s[8] / trees) if trees else 0.0,
        "node_f1": 100.0 * f1(*map(float, s[9:12])),
    }


def sufficient_stats(kind: MetricKind, units: Sequence[Any]) -> tuple[np.ndarray, Finish]:
    """(per-example statistics matrix, function from its column sums to a 0-1 score)."""
    if kind in ("accuracy", "mean"):
        return np.array([[float(u), 1.0] for u in units]).reshape(-1, 2), _mean
    if kind == "micro_f1":
        return np.array(units, dtype=float).reshape(-1, 3), _micro_f1
    if kind == "bleu":
        return np.array(units, dtype=float).reshape(-1, 10), _bleu
    if kind == "macro_f1":
        return _macro_f1_stats(units)
    if kind == "text2dt":
        return np.array(units, dtype=float).reshape(-1, 12), _tree_accuracy
    raise ValueError(f"unknown metric kind {kind!r}; expected one of {KINDS}")


def aggregate(kind: MetricKind, units: Sequence[Any]) -> float:
    """The corpus score (0-100) of ``units`` under metric ``kind``."""
    stats, finish = sufficient_stats(kind, units)
    if not len(units):
        return 0.0
    return 100.0 * finish(stats.sum(axis=0))
