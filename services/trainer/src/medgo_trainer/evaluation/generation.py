"""Metrics for free-text outputs: ROUGE (report generation), BLEU and entity F1 (dialogue).

No such data is shipped yet; these are ready for when it is. Chinese has no spaces,
so text is compared by characters (whitespace dropped), the usual choice for Chinese
ROUGE/BLEU (e.g. the CBLUE/PromptCBLUE generation tasks). Each function returns the
per-example unit that `metrics.aggregate` turns into a corpus score.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from medgo_trainer.evaluation.metrics import f1, set_unit


def tokens(text: str) -> list[str]:
    """Characters without whitespace: the token unit for Chinese ROUGE and BLEU."""
    return [ch for ch in text if not ch.isspace()]


def _ngrams(toks: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(toks[i : i + n]) for i in range(len(toks) - n + 1))


def rouge_n(hypothesis: str, reference: str, n: int) -> float:
    """ROUGE-N F1 (Lin 2004) on character n-grams, in [0, 1]."""
    hyp, ref = _ngrams(tokens(hypothesis), n), _ngrams(tokens(reference), n)
    overlap = sum((hyp & ref).values())
    return f1(overlap, sum(hyp.values()), sum(ref.values()))


def _lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Longest common subsequence by dynamic programming, one row at a time."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def rouge_l(hypothesis: str, reference: str) -> float:
    """ROUGE-L F1 (β = 1) from the longest common subsequence, in [0, 1]."""
    hyp, ref = tokens(hypothesis), tokens(reference)
    return f1(_lcs_length(hyp, ref), len(hyp), len(ref))


def bleu_unit(hypothesis: str, reference: str) -> list[int]:
    """Clipped n-gram matches and totals (n = 1..4) plus lengths, for corpus BLEU-4."""
    hyp, ref = tokens(hypothesis), tokens(reference)
    matches, totals = [], []
    for n in range(1, 5):
        h, r = _ngrams(hyp, n), _ngrams(ref, n)
        matches.append(sum((h & r).values()))
        totals.append(sum(h.values()))
    return [*matches, *totals, len(hyp), len(ref)]


def entity_unit(hypothesis: str, reference: str, vocabulary: Iterable[str]) -> list[int]:
    """Entity F1 unit for dialogue: medical terms of ``vocabulary`` mentioned in the
    reply versus those mentioned in the reference reply (MedDG-style)."""
    terms = [t for t in vocabulary if t]
    return set_unit((t for t in terms if t in hypothesis), (t for t in terms if t in reference))
