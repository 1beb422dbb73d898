"""Names in free prose ("张伟昨天来复诊"), found with jieba's packaged dictionary.

The rules in `names` need a cue (患者, 姓名：, 先生, "张三，男，45岁"); a bare name in
running text has none. What it does have is a statistical signature: jieba segments
text by maximum probability over its word-frequency dictionary (shipped inside the
PyPI package, 350,000 words, of which 73,000 are tagged `nr`, personal name), so a
name that is not a dictionary word breaks into single characters that no word
explains ("孙/秀/英" beside "昨天/来/复诊"), and a famous or common one comes out as
one `nr` token ("李明华", "王建国"). A candidate is a known surname followed by such
unexplained single characters, or a dictionary `nr` word, or a surname plus an `nr`
given name ("孙/秀英").

Evaluated and not used: Baidu's LAC needs PaddlePaddle (a multi-hundred-megabyte
framework, no wheel for this platform's Python 3.11 at the pinned version); pkuseg
downloads its models at first use. jieba is pure Python, its dictionary is in the
wheel, and nothing is fetched at run time. Cost: segmentation without the HMM is
linear (a DAG over dictionary prefixes, at most one dictionary-length lookahead per
character), about 2 µs per character here; the dictionary (~100 MB in memory) loads
once per process (`warm_up`, ~1-3 s), which services do at start-up.

Precision guards: a single-character candidate part must be a plausible given-name
character (not in the rules' break set, not a function word), the candidate must not
be glued to another unexplained character on either side (a run of four or more
single characters is usually a transliteration or a list, not one name), and `nr`
words that are also common vocabulary in medical text are dropped by the same rules.

Second opinion: a candidate whose given-name characters have only modest name odds
(between `CANDIDATE_*` and `ODDS_*`) is kept when it does not start a dictionary word
and jiagu's shipped NER weights start a person there (`name_tagger`; jiagu==0.2.3,
MIT, model inside the PyPI package). Alone that tagger calls herbs people (姜黄); on
jieba's candidates it separates 朱艳坤 from 雷公藤. THULAC (better recall) is free
for research only, so it is not used. `find_cued_names` applies the dictionary to
names right after a cue word that the rules leave (患儿万秋和家人).
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Iterator
from functools import cache
from typing import Any, NamedTuple

from medgo_common.phi import name_tagger
from medgo_common.phi.names import _BREAK, _CUE_RE, _STRONG_BOUNDARY, _surname_at, _surnames
from medgo_common.phi.patterns import PhiType, Span

_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_HAN_RUN_RE = re.compile(r"[\u4e00-\u9fff]+")
_RARE = 50  # dictionary frequency at or below which a three-character `nr` word is a name
_SMOOTH = 100
# Name odds a lone given-name character needs: one character (张伟) needs more
# evidence than each of two (李秀英), since "surname + one character" is everywhere.
ODDS_ONE = 0.01
ODDS_TWO = 0.003
# Candidates between these and the odds above are names only if jiagu's tagger says
# so (`name_tagger`); chosen on the dev sets of seeds 7-9 (docs/benchmarks.md).
CANDIDATE_ONE = 0.001
CANDIDATE_TWO = 0.0005
# At most this many tagger calls, plus one per this many characters: a fixed cost
# per call (~50 µs), so runs of surnames stay linear and cheap; candidates past the
# budget are dropped, as every candidate below ODDS_* was before the tagger.
TAGGED_MIN = 2
TAGGED_PER_CHARS = 200
# Likewise for the dictionary check of names after a cue word (`find_cued_names`).
CUED_PER_CHARS = 50
# After a cue word a name is expected, so far less evidence is needed (dev-set choice).
ODDS_CUED = 0.0003
_NUMERALS = frozenset("零〇一二三四五六七八九十百千两几")
# Product context: a word taken, bought or made after these is a drug, food or brand
# (服用卓玛丹, 吃了舒婷, 半个沙琪玛, 代言了安慕希) ...
_BEFORE_PRODUCT_RE = re.compile(
    r"(?:服用|服食|服|吃了?|喝了?|饮用?|用了?|涂|抹|开了|注射|代言了?|买了?|加了|[个片粒颗支瓶盒袋包剂（(])$"
)
# ... and so is one followed by a product or institution word (李斯特菌, 邵逸夫医院, 甘舒林R).
_AFTER_PRODUCT_RE = re.compile(r"医院|菌|片|胶囊|颗粒|丸|膏|液|药|牌|注射|口服|[A-Za-z0-9]")
# Single characters that jieba leaves alone in ordinary text and that do not end or
# continue a Chinese given name (particles, measure words, verbs of motion...).
_NOT_GIVEN = frozenset(
    "了着过吗呢吧啊呀哦嗯么个只条张块次回下些点种样般很太更最还就才都也又再没别让被给把"
    "跟和同或但而且并所以如若虽然即便则之乎者也其此该每各某另本第些哪谁啥怎么为以与及"
    "吃喝睡走跑看听想知道做买卖开关拿放打叫问答写读学教等找带送接回进上下左右中大小多少"
    "好坏新旧长短高低老年月日天周号时分秒岁斤两米克升毫"
)


class _Model(NamedTuple):
    tokenizer: Any
    full_names: frozenset[str]  # rare `nr` words of three characters: 李明华, 王建国
    rare_nr: frozenset[str]  # rare `nr` words of two characters: 苏波, 秀英
    surname_start: re.Pattern[str]  # a surname's first character, then a Han character
    given_odds: dict[str, float]  # how much more often a character is in names than words
    name_odds: dict[str, float]  # the same, for the characters that pass `_given_char`
    nr_words: frozenset[str]  # every word the dictionary tags `nr`


# Characters of transliterated drug and brand names (尤卓尔, 易坦静, 李斯特菌) and of
# chemical names (吗丁啉) that Chinese given names almost never use.
_TRANSLITERATION = frozenset("尔斯特克普坦奥萨维索莱卓沙琪啉嗪唑酮酯胺烷烯醇酸钠钾钙铝镁锌铁")
# Common words that jieba's dictionary tags as personal names, found when reviewing
# the real questions (docs/benchmarks.md): dropped outright.
_NOT_NAMES = frozenset({"桑葚"})
# Given-name look-alikes after a surname in medical text: 谷丙/谷草 (ALT/AST).
_NOT_CUED_GIVEN = frozenset("丙草")


@cache
def _model() -> _Model:
    """jieba's tokenizer on its packaged dictionary, and name statistics from it.

    `given_odds[ch]` = (names in which `ch` is a given-name character) / (frequency of
    `ch` in all other dictionary words): high for 伟/敏/娜, low for 抹/嘴/零, which split
    off ordinary words ("涂抹", "张嘴", "39周零3天") far more often than they name people.
    jieba is imported here, not at module level: ~100 MB, needed only when names are
    scanned.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.initialize()
    known, _ = _surnames()
    in_names: Counter[str] = Counter()
    in_words: Counter[str] = Counter()
    full_names: set[str] = set()
    rare_nr: set[str] = set()
    nr_words: set[str] = set()
    with jieba.get_dict_file() as fh:
        for raw in fh:
            word, freq, tag = raw.decode("utf-8").split()
            if tag.startswith("nr"):
                nr_words.add(word)
            if tag == "nr" and len(word) in (2, 3) and word[0] in known:
                in_names.update(word[1:])
                if int(freq) <= _RARE:
                    (full_names if len(word) == 3 else rare_nr).add(word)
            if tag == "nr" and len(word) == 2 and int(freq) <= _RARE:
                rare_nr.add(word)
            elif tag != "nr":
                for ch in word:
                    in_words[ch] += int(freq)
    odds = {ch: n / (in_words[ch] + _SMOOTH) for ch, n in in_names.items()}
    firsts = "".join(sorted({name[0] for name in known}))
    surname_start = re.compile(f"[{firsts}][\u4e00-\u9fff]")
    return _Model(
        tokenizer, frozenset(full_names), frozenset(rare_nr), surname_start, odds,
        {ch: value for ch, value in odds.items() if _given_char(ch)}, frozenset(nr_words),
    )


def warm_up() -> None:
    """Load the dictionary and the tagger's weights now (services call this at start-up,
    off the request path; together ~2-4 s)."""
    _model()
    name_tagger.warm_up()


def loaded() -> bool:
    """True once the dictionary and the tagger's weights are in memory."""
    return _model.cache_info().currsize > 0 and name_tagger.loaded()


def _given_char(ch: str) -> bool:
    return bool(_HAN_RE.match(ch)) and ch not in _BREAK and ch not in _NOT_GIVEN and (
        ch not in _TRANSLITERATION
    )


def _tokens(text: str) -> list[tuple[str, int]]:
    """(word, offset) for the whole text: Han runs cut by jieba, the rest kept whole.

    Only Han runs holding a surname followed by another Han character go through the
    segmenter (the others are one opaque token each), and they go straight to jieba's
    per-block dictionary cut, skipping its own block splitting: on text made of short
    runs ("1床1床…") that splitting cost more per character than the cut itself.
    `_Tokenizer__cut_DAG_NO_HMM` is jieba's internal name for it in the pinned 0.42.1.
    """
    model = _model()
    cut_block = model.tokenizer._Tokenizer__cut_DAG_NO_HMM
    out: list[tuple[str, int]] = []
    pos = 0
    for run in _HAN_RUN_RE.finditer(text):
        if run.start() > pos:
            out.append((text[pos : run.start()], pos))
        block, at = run.group(), run.start()
        if model.surname_start.search(block) is None:
            out.append((block, at))
        else:
            for word in cut_block(block):
                out.append((word, at))
                at += len(word)
        pos = run.end()
    if pos < len(text):
        out.append((text[pos:], pos))
    return out


def _odds(chars: str) -> float:
    """The lowest name odds among `chars` (0 if one cannot be in a given name)."""
    odds = _model().name_odds
    return min(odds.get(ch, 0.0) for ch in chars)


def find_prose_names(text: str) -> Iterator[Span]:
    """Bare personal names in running text (see the module docstring for the signals).

    A candidate whose given-name characters reach the `ODDS_*` odds is a name; one
    that reaches only the lower `CANDIDATE_*` odds is a name if it does not start a
    dictionary word (姜黄, 蒲公英, 胡椒粉) and jiagu's tagger starts a person there.
    """
    if not _HAN_RE.search(text):
        return
    known, ambiguous = _surnames()
    model = _model()
    budget = TAGGED_MIN + len(text) // TAGGED_PER_CHARS
    for span, sure in _candidates(
        _tokens(text), known, ambiguous, model.full_names, model.rare_nr
    ):
        if not sure and budget <= 0:
            continue
        if _product_context(text, span) or text[span.start : span.end] in _NOT_NAMES:
            continue
        if sure:
            yield span
        elif not _word_at(model, text, span.start, span.start + 2, names_too=True):
            budget -= 1
            if name_tagger.starts_person(text, span.start):
                yield span


def _product_context(text: str, span: Span) -> bool:
    before = text[max(0, span.start - 3) : span.start]
    return bool(_BEFORE_PRODUCT_RE.search(before) or _AFTER_PRODUCT_RE.match(text, span.end))


def _candidates(
    tokens: list[tuple[str, int]],
    known: frozenset[str],
    ambiguous: frozenset[str],
    full_names: frozenset[str],
    nr_words: frozenset[str],
) -> Iterator[tuple[Span, bool]]:
    """(candidate, sure): sure when its given name reaches `ODDS_*`, not only `CANDIDATE_*`."""
    i = 0
    while i < len(tokens):
        word, start = tokens[i]
        if word in full_names and word[0] not in ambiguous:
            if (odds := _odds(word[1:])) >= CANDIDATE_TWO:
                yield Span(PhiType.NAME, start, start + len(word)), odds >= ODDS_TWO
        elif len(word) == 2 and word in nr_words and word[0] in known and word[0] not in ambiguous:
            if (odds := _odds(word[1:])) >= CANDIDATE_ONE:  # 苏波: a two-character `nr` word
                yield Span(PhiType.NAME, start, start + 2), odds >= ODDS_ONE
        elif word in known and len(word) <= 2:
            found, used = _surname_then_given(tokens, i, ambiguous)
            if found is not None:
                yield found
                i += used
                continue
        i += 1


def _surname_then_given(
    tokens: list[tuple[str, int]], i: int, ambiguous: frozenset[str]
) -> tuple[tuple[Span, bool] | None, int]:
    """Surname token at `i` + one or two lone given-name characters."""
    surname, start = tokens[i]
    prev = tokens[i - 1][0] if i > 0 else ""
    # Glued to another lone character, or after a number ("38周整" is 38 weeks).
    if len(prev) == 1 and (
        (_HAN_RE.match(prev) and prev not in _BREAK) or prev.isdigit() or prev in _NUMERALS
    ):
        return None, 1
    rest = [word for word, _ in tokens[i + 1 : i + 4]]
    two = rest[0] if rest and len(rest[0]) == 2 and rest[0] in _model().rare_nr else ""
    if two and (odds := _odds(two)) >= CANDIDATE_TWO:  # 孙 + 秀英
        return (Span(PhiType.NAME, start, start + len(surname) + 2), odds >= ODDS_TWO), 2
    given = 0
    while given < min(2, len(rest)) and len(rest[given]) == 1 and _given_char(rest[given]):
        given += 1
    if given == 0:
        return None, 1
    if given < len(rest) and len(rest[given]) == 1 and _given_char(rest[given]):
        return None, 1  # a run of lone characters: a list or a transliteration
    if given == 1 and surname in ambiguous:
        return None, 1
    odds = _odds("".join(rest[:given]))
    needed, sure = (CANDIDATE_ONE, ODDS_ONE) if given == 1 else (CANDIDATE_TWO, ODDS_TWO)
    if odds < needed:
        return None, 1
    return (Span(PhiType.NAME, start, start + len(surname) + given), odds >= sure), 1 + given


def find_cued_names(text: str) -> Iterator[Span]:
    """A name right after a cue word that the rules in `names` leave, checked by the dictionary.

    The rules take 患者 + 高/明/万/石… + given name only before a clear boundary
    (punctuation, 的, 说…), since "患者高热" and "患者明显好转" are ordinary text, and never
    take a given name starting with a `_BREAK` character (刘可, since "患者可见"). Here such
    a candidate is taken before any word start ("患儿万秋和家人", "我是石伟祥上周") when
    the dictionary vouches for it: its given-name characters have some name odds, no
    dictionary word starts at the surname (明显, 平素, 石膏, 马上; any tag, since jieba
    tags 艾灸 and 谢谢 `nr`) and the name does not cut a word in two (妇幼|保健).
    Cost: a bounded number of dictionary look-ups per candidate, and at most
    `TAGGED_MIN` + one per `CUED_PER_CHARS` characters candidates (a cue word every few
    characters is an attack on the worst case, not a record).
    """
    _, ambiguous = _surnames()
    model = _model()
    budget = TAGGED_MIN + len(text) // CUED_PER_CHARS
    for m in _CUE_RE.finditer(text):
        pos = m.end()
        if not model.surname_start.match(text, pos):
            continue  # "1床1床…": most cue words are not followed by a surname
        surname = _surname_at(text, pos)
        if surname is None:
            continue
        given_start = pos + len(surname)
        if surname not in ambiguous and text[given_start : given_start + 1] not in _BREAK:
            continue  # the rules decide this one
        if budget <= 0:
            return
        budget -= 1
        if span := _cued_name(model, text, pos, given_start):
            yield span


def _cued_name(model: _Model, text: str, pos: int, given_start: int) -> Span | None:
    if _word_at(model, text, pos, given_start + 1, names_too=True):
        return None
    first = text[given_start : given_start + 1]
    if not _cued_given_char(model, first):
        return None
    second = text[given_start + 1 : given_start + 2]
    # Two given characters if the second can be one, else (万峰|淑前) or then, one.
    ends = (given_start + 2, given_start + 1) if _cued_given_char(model, second) else (
        given_start + 1,)
    for end in ends:
        if _word_starts(model, text, end) and not _word_at(model, text, given_start, end + 1):
            return Span(PhiType.NAME, pos, end)
    return None


def _cued_given_char(model: _Model, ch: str) -> bool:
    """A given-name character after a cue: 可 and other `_BREAK` characters allowed
    (刘可, 诸葛可琳), since the dictionary checks then reject 可见, 可能, 在家."""
    return (
        model.given_odds.get(ch, 0.0) >= ODDS_CUED  # only Han characters have odds
        and ch not in _NOT_GIVEN and ch not in _TRANSLITERATION and ch not in _NOT_CUED_GIVEN
    )


def _word_starts(model: _Model, text: str, pos: int) -> bool:
    """True at the end of the text, a boundary or break character, or a dictionary word."""
    if pos >= len(text) or text[pos] in _BREAK or text[pos] in _STRONG_BOUNDARY:
        return True
    freq = model.tokenizer.FREQ
    return bool(freq.get(text[pos : pos + 2]) or freq.get(text[pos : pos + 3]))


def _word_at(model: _Model, text: str, pos: int, reach: int, *, names_too: bool = False) -> bool:
    """True if a dictionary word (not `nr`, unless `names_too`) spans `pos` to >= `reach`.

    At the surname (reach = first given character): 明显, 平素, 石膏, 马上. At the given
    name (reach = one past its end): a word the name would cut in two, 妇幼|保健.
    jieba's FREQ holds every prefix of every word (frequency 0 for a bare prefix), so
    the scan stops at the first string that no word starts with.
    """
    freq = model.tokenizer.FREQ
    for end in range(pos + 2, min(pos + 6, len(text)) + 1):
        word = text[pos:end]
        count = freq.get(word)
        if count is None:
            return False
        if count and end >= reach and (names_too or word not in model.nr_words):
            return True
    return False
