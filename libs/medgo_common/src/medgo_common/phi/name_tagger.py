"""A second opinion on name candidates from jiagu's shipped NER weights.

jiagu (MIT, pinned 0.2.3) ships a character-level named-entity tagger in its PyPI
package: an averaged perceptron with BIO labels for people, places and organisations
(`jiagu/model/ner.model`, a gzip-compressed pickle of `({feature: {label: weight}},
labels)`), decoded greedily left to right. On its own it is too loose for redaction
(it tags herbs and dishes, 姜黄, 蒲公英, as people), but where jieba's dictionary
already proposes "surname + given name" it separates names from herbs and drugs
well (docs/benchmarks.md, issue 18). We read only the weights; the scoring below is
ours, and it scores a few characters around one candidate instead of tagging the
whole text, so its cost is fixed per candidate (`prose_names` bounds how many).

The features are jiagu's template, which the weights are keyed by: for the
character at i, the bias; the character itself (as word, first character and
suffix); the characters at i-2, i-1 (and its suffix), i+1 (and its suffix) and i+2,
with -START-/-END- markers past the ends of the text; and the two previous labels,
alone, together and with the character. The file is found without importing jiagu
(its package import builds unrelated models) and loaded once per process.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import pickle
from functools import cache
from pathlib import Path

_START = ("-START-", "-START2-")
_END = ("-END-", "-END2-")
PERSON_START = "B-PER"
# Characters decoded before the candidate so that the labels it sees for its two
# predecessors come from the text, not from an assumed start of sentence.
_LEAD = 4

Weights = dict[str, tuple[float, ...]]
# sha256 of jiagu-0.2.3's jiagu/model/ner.model (sdist and the wheel built from it).
MODEL_SHA256 = "c8e8cb1f9e94af6681beb1833c428cba22674eff145f76e75a0f184b22a98391"


def model_path() -> Path:
    """`ner.model` inside the installed jiagu package (no import of jiagu itself)."""
    spec = importlib.util.find_spec("jiagu")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("jiagu is not installed (pinned in medgo-common's dependencies)")
    return Path(next(iter(spec.submodule_search_locations))) / "model" / "ner.model"


@cache
def _weights() -> tuple[Weights, tuple[str, ...]]:
    return load(model_path())


def load(path: Path) -> tuple[Weights, tuple[str, ...]]:
    """Each feature's weights as a tuple in the order of the sorted labels (~0.5 s, ~60 MB).

    Unpickling runs whatever the file says, so the file must be byte for byte the one
    in the pinned jiagu==0.2.3 package from PyPI (`MODEL_SHA256`): the same trust as
    importing that package's code, and nothing else is ever unpickled.
    """
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != MODEL_SHA256:
        raise RuntimeError(f"{path} is not jiagu 0.2.3's ner.model; refusing to unpickle it")
    raw, labels = pickle.loads(gzip.decompress(data))
    order = tuple(sorted(labels))
    weights = {
        feature: tuple(per_label.get(label, 0.0) for label in order)
        for feature, per_label in raw.items()
    }
    return weights, order


def warm_up() -> None:
    """Load the weights now (services call this at start-up, off the request path)."""
    _weights()


def loaded() -> bool:
    """True once the weights are in memory."""
    return _weights.cache_info().currsize > 0


def _token(text: str, i: int) -> str:
    if i < 0:
        return _START[i + 2] if i >= -2 else _START[0]
    if i >= len(text):
        return _END[min(i - len(text), 1)]
    return text[i]


def _features(text: str, i: int, prev: str, prev2: str) -> list[str]:
    ch, before, after = text[i], _token(text, i - 1), _token(text, i + 1)
    return [
        "bias",
        f"i suffix {ch}",
        f"i pref1 {ch}",
        f"i-1 tag {prev}",
        f"i-2 tag {prev2}",
        f"i tag+i-2 tag {prev} {prev2}",
        f"i word {ch}",
        f"i-1 tag+i word {prev} {ch}",
        f"i-1 word {before}",
        f"i-1 suffix {before[-3:]}",
        f"i-2 word {_token(text, i - 2)}",
        f"i+1 word {after}",
        f"i+1 suffix {after[-3:]}",
        f"i+2 word {_token(text, i + 2)}",
    ]


def _best(weights: Weights, labels: tuple[str, ...], features: list[str]) -> str:
    rows = [row for feature in features if (row := weights.get(feature)) is not None]
    scores = [sum(column) for column in zip(*rows, strict=True)] if rows else [0.0] * len(labels)
    return max(zip(scores, labels, strict=True))[1]  # ties: the later label, as jiagu does


def starts_person(text: str, start: int) -> bool:
    """True if the tagger labels the character at `start` as the first of a person name.

    Greedy decoding from `_LEAD` characters earlier (labels before that taken as
    outside any entity, or the sentence-start markers at the start of the text):
    at most `_LEAD + 1` characters are scored, whatever the length of the text.
    """
    weights, labels = _weights()
    first = max(0, start - _LEAD)
    prev, prev2 = ("O", "O") if first else _START
    label = "O"
    for i in range(first, start + 1):
        label = _best(weights, labels, _features(text, i, prev, prev2))
        prev, prev2 = label, prev
    return label == PERSON_START
