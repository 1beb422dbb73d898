"""Personal names in clinical context.

Chinese has no spaces and almost any character can end a given name, so names are
found only where clinical writing announces them: a label (姓名：, 联系人：), a role
word (患者, 家属, 主治医师, 其女儿), a courtesy title (先生/女士), or the case-record
opening "张三，男，45岁". After the cue we read a surname from `surnames.txt`
(compound ones first) and up to two given-name characters, stopping at characters
that in clinical text almost always start the next word (因, 于, 发, 咳, 入...).
Surnames that double as common words (高热, 全身, 明显) need a clear boundary after
a cue word, which keeps ordinary sentences such as "患者高热3天" intact.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from importlib import resources

from medgo_common.phi.patterns import PhiType, Span

# Characters that end a name: they are rare in given names and frequent right after
# one in clinical narrative (verbs, symptoms, body parts, time words, pronouns, sex).
_BREAK = frozenset(
    "因于在自诉今昨前入出主男女性年岁的是和与及等来去到已被近既反突由行曾就服用咳发头"
    "腹胸感无不未患病诊经术后住两每约呈伴目现仍再又也都均共从向对将把说称表述要想需应"
    "可能会请做查检测血尿便吐痛疼喘烧热肿晕显身规侧龄纯节属细疸重化奶括毒离颤室剖其间"
    "祸续汗醉缓体疹肤直道危院次易外我当半上色度戴复昏迷时常肺肝肾胃肠脑眼耳鼻口手足腿"
    "背腰颈皮骨关息代推系谢你您们他她它这那么里面边些多惑答释险躺内散吃见烈灸呕嗳务判"
    "压早"
)
# Where a name after a cue word must end when its surname is ambiguous.
_STRONG_BOUNDARY = frozenset(
    "，,。.；;、：:（()）！!？? \t\n\u3000男女因诉的今昨代已共推将被把在也还又再是说让给"
    "0123456789一二三四五六七八九十"
)
# "于" ends a name only when a time follows: "患者常俊杰于2023年" but not "患者平卧于床".
_YU_TIME = re.compile(r"于[\d今昨明本前同去上]")
# Placeholder given names used in semi-redacted records: 王某, 李某某, 张XX, 刘**.
_MASK_CHARS = frozenset("某X×*＊x")

_HAN = re.compile(r"[\u4e00-\u9fff]")
_HAN_RUN_RE = re.compile(r"[\u4e00-\u9fff]{1,5}")
# Pinyin after a name label: "Zhang Wei", "ZHANG Wei", "Ouyang Nana".
_PINYIN_RE = re.compile(r"[A-Z][A-Za-z]{0,9}(?: [A-Z][A-Za-z]{0,9}){1,2}(?![A-Za-z])")
_SEP = r"[:：，,\s]?"

# Labels: what follows is a name, whatever its surname (a rare one still counts).
_LABEL_RE = re.compile(
    r"(?:姓名|联系人|签名|签字|监护人|委托人|代理人|收件人|申请人)\s{0,3}[:：]\s{0,3}"
)
# Cue words after which a name may follow (患者张三, 家属李四, 12床王五, 其女儿赵六),
# but so may ordinary text (患者高热, 医生应该, 妈妈和宝宝).
# The lookahead lists the first character of every alternative below (keep them in
# step; a test matches each cue word): it lets the scan skip a position with one class
# test instead of trying ~40 alternatives, 3-8x faster on text without cues.
_CUE_FIRST = (
    "患病产孕伤我本家联陪监委主副住经上责管接值医护大其之"
    "儿女丈妻父母爱老哥姐弟妹妈爸奶爷外"
)
_CUE_RE = re.compile(
    rf"(?=[{_CUE_FIRST}+\d])"
    r"(?:患者|病人|患儿|病患|产妇|孕妇|伤者|我是|本人|家属|联系人|陪护|监护人|委托人|我叫|"
    r"\+?\d{1,3}号?床的?|"
    r"(?:主治|主任|副主任|住院|经治|上级|责任|管床|接诊|值班|主诊)?(?:医师|医生|护士)|护士长|大夫|"
    r"(?:其|患者|之|我)?(?:儿子|女儿|丈夫|妻子|父亲|母亲|爱人|老伴|哥哥|姐姐|弟弟|妹妹|"
    r"妈妈|爸爸|奶奶|爷爷|外婆|外公|老公|老婆)|(?:其|之)[子女])" + _SEP
)
# Courtesy titles may follow a bare surname (王女士); professional titles only count
# after a full name (李建国主任), since "王主任" alone identifies nobody in particular.
_COURTESY_RE = re.compile(r"先生|女士")
_PROFESSIONAL_RE = re.compile(r"医生|医师|护士|大夫|主任|教授")
# A department may directly precede a clinician's name: "急诊科贺敏医生".
_TITLE_LEFT_OK = frozenset("科室组部")
# A clause-initial name followed by demographics or a record field: "张三，男，45岁",
# "李四（女，32岁）", "王五，60岁，男", "方洋，男，", "贾蕾　门诊号 ...", "夏浩，12床".
_CLAUSE_NAME_FOLLOWERS_RE = re.compile(
    r"\s{0,3}[，,（(]?\s{0,3}(?:[男女](?:\s{0,3}[，,、)）]|\s{0,3}\d{1,3}\s{0,3}岁)"
    r"|\d{1,3}\s{0,3}岁\s{0,3}[，,、]?\s{0,3}[男女]"
    r"|(?:门诊号|住院号|病历号|病案号|床号|身份证|证件号|\+?\d{1,3}号?床)"
    r"|(?:性别|年龄|出生日期|出生年月|民族|职业|婚姻|籍贯|联系电话|电话|手机|现住址|住址|地址)"
    r"\s{0,3}[:：])"
)


@cache
def _surnames() -> tuple[frozenset[str], frozenset[str]]:
    """(all surnames, ambiguous ones) from the packaged data file."""
    known: set[str] = set()
    ambiguous: set[str] = set()
    data = resources.files("medgo_common.phi").joinpath("surnames.txt").read_text("utf-8")
    for raw in data.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("?"):
            line = line[:-1]
            ambiguous.add(line)
        known.add(line)
    return frozenset(known), frozenset(ambiguous)


def _surname_at(text: str, pos: int) -> str | None:
    known, _ = _surnames()
    for size in (2, 1):
        candidate = text[pos : pos + size]
        if len(candidate) == size and candidate in known:
            return candidate
    return None


def _given_end(text: str, pos: int, limit: int = 2) -> int:
    """End of the given name starting at `pos` (== pos when there is none)."""
    masked = pos < len(text) and text[pos] in _MASK_CHARS  # 李某为… : 某 only, not 为
    end = pos
    while end < len(text) and end - pos < limit:
        ch = text[end]
        if ch in _MASK_CHARS or (not masked and _HAN.match(ch) and ch not in _BREAK):
            end += 1
        else:
            break
    return end


def _ends_clearly(text: str, end: int) -> bool:
    return end >= len(text) or text[end] in _STRONG_BOUNDARY or bool(_YU_TIME.match(text, end))


def _name_after_cue(text: str, pos: int, *, cued: bool) -> Span | None:
    """A name starting exactly at `pos`, or None if the text there is not one."""
    surname = _surname_at(text, pos)
    if surname is None:
        return None
    given_start = pos + len(surname)
    end = _given_end(text, given_start)
    if end == given_start:
        return None
    _, ambiguous = _surnames()
    if cued and surname in ambiguous:
        # The given name read greedily may run into the next word ("曾敏一直": 敏一);
        # a shorter one that ends clearly is the name.
        while end > given_start and not _ends_clearly(text, end):
            end -= 1
        if end == given_start:
            return None
    return Span(PhiType.NAME, pos, end)


def _labelled_name(text: str, pos: int) -> Span | None:
    """After 姓名： the name: 2-4 Han characters (surname list or not) or pinyin.

    A run of 2-4 Han characters ending at a non-Han character is taken whole (邓可勇：
    可 would end a name in prose, not after a label); a longer run falls back to the
    given-name rules.
    """
    if pinyin := _PINYIN_RE.match(text, pos):
        return Span(PhiType.NAME, pos, pinyin.end())
    run = _HAN_RUN_RE.match(text, pos)
    if run and 2 <= len(run.group()) <= 4:
        return Span(PhiType.NAME, pos, run.end())
    end = pos + len(_surname_at(text, pos) or text[pos : pos + 1])
    end = _given_end(text, end, limit=4 - (end - pos))
    if end - pos < 2 or not _HAN.match(text[pos]):
        return None
    return Span(PhiType.NAME, pos, end)


def _clause_start(text: str, start: int, *, allow_department: bool = False) -> bool:
    """True if a name may begin at `start`: not glued to preceding Han text."""
    if start < 0:
        return False
    if start == 0 or not _HAN.match(text[start - 1]):
        return True
    return allow_department and text[start - 1] in _TITLE_LEFT_OK


def _titled_names(text: str, title_re: re.Pattern[str], *, min_given: int) -> Iterator[Span]:
    """王女士 / 李建国主任: a clause-initial surname (+ given name) right before a title."""
    _, ambiguous = _surnames()
    for m in title_re.finditer(text):
        for length in (4, 3, 2, 1):
            start = m.start() - length
            if not _clause_start(text, start, allow_department=bool(min_given)):
                continue
            surname = _surname_at(text, start)
            if surname is None or (min_given and surname in ambiguous):
                continue
            given_start = start + len(surname)
            given = m.start() - given_start
            if given >= min_given and _given_end(text, given_start, given) == m.start():
                yield Span(PhiType.NAME, start, m.start())
                break


def _clause_names(text: str) -> Iterator[Span]:
    """A name opening a clause and followed by demographics or a record field."""
    for m in _CLAUSE_NAME_FOLLOWERS_RE.finditer(text):
        for length in (4, 3, 2):
            start = m.start() - length
            if not _clause_start(text, start):
                continue
            span = _name_after_cue(text, start, cued=False)
            if span is not None and span.end == m.start():
                yield span
                break


def find_names(text: str) -> Iterator[Span]:
    """Personal names announced by a label, a cue word, a title or demographics."""
    for m in _LABEL_RE.finditer(text):
        if m.end() < len(text) and (span := _labelled_name(text, m.end())):
            yield span
    for m in _CUE_RE.finditer(text):
        if span := _name_after_cue(text, m.end(), cued=True):
            yield span
    yield from _titled_names(text, _COURTESY_RE, min_given=0)
    yield from _titled_names(text, _PROFESSIONAL_RE, min_given=1)
    yield from _clause_names(text)
