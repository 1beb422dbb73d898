"""Label-driven fallbacks: whatever follows an identifying field label is PHI.

The shape detectors (`patterns`, `addresses`) need a value that looks right: an ID
with a valid check character, an address with a city or street unit, a record number
in one piece. Records are typed by people, so after 身份证号/住院号/联系电话/地址 the
value may be mistyped (wrong check digit), written in groups ("110105 19491231 002X",
"ZY 2023 0045") or partial ("洪山区文化巷3号"). The label itself is the evidence: the
value after it, up to the end of the clause or the next field label, is redacted with
the label's type. Checksums and shapes remain extra evidence elsewhere, not a gate here.

Numeric labels take a run of digits and letters with single spaces or hyphens between
groups and need at least six digits (so "住院号见上" or "电话联系" take nothing);
address labels need a separator (：/是/为), since "地址" alone is common in questions
("医院地址在哪").
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from medgo_common.phi.patterns import PhiType, Span

_NUMERIC_LABELS = {
    "身份证号码": PhiType.ID_CARD, "身份证号": PhiType.ID_CARD, "身份证": PhiType.ID_CARD,
    "证件号码": PhiType.ID_CARD, "证件号": PhiType.ID_CARD,
    "住院号": PhiType.ADMISSION, "住院编号": PhiType.ADMISSION,
    "病案号": PhiType.MEDICAL_RECORD, "病历号": PhiType.MEDICAL_RECORD,
    "病历编号": PhiType.MEDICAL_RECORD,
    "门诊号": PhiType.OUTPATIENT, "就诊卡号": PhiType.OUTPATIENT,
    "联系电话": PhiType.PHONE, "电话号码": PhiType.PHONE, "手机号码": PhiType.PHONE,
    "手机号": PhiType.PHONE, "电话": PhiType.PHONE, "手机": PhiType.PHONE,
}  # fmt: skip
_ADDRESS_LABELS = ("现住址", "家庭住址", "家庭地址", "联系地址", "住址", "地址")

_SEP = r"(?:码)?(?:为|是)?\s{0,3}[:：#]?\s{0,3}"
_NUMERIC_RE = re.compile(
    "(" + "|".join(sorted(_NUMERIC_LABELS, key=len, reverse=True)) + ")" + _SEP
    + r"(\+?[\dA-Za-z(（](?:[ \-()（）转]?[\dA-Za-z)）]){5,39})(?![\dA-Za-z])"
)
# The value ends at clause punctuation, a line break, a wide gap, or the next "label：";
# a placeholder ("地址：[地址]") is not a value, so redaction stays idempotent.
_ADDRESS_RE = re.compile(
    "(?:" + "|".join(_ADDRESS_LABELS) + r")\s{0,3}(?:[:：]|为|是)\s{0,3}"
    r"(?!\[)((?:(?![，,。；;！!？?\n\t\u3000]|\s{2}|\s?[\u4e00-\u9fff]{2,5}[:：])[^\s]|\s(?!\s)){2,80})"
)
_MIN_DIGITS = 6


def find_labelled_values(text: str) -> Iterator[Span]:
    """The value after an ID, record, phone or address label, typed by the label."""
    for m in _NUMERIC_RE.finditer(text):
        value = m.group(2)
        if sum(ch.isdigit() for ch in value) >= _MIN_DIGITS:
            yield Span(_NUMERIC_LABELS[m.group(1)], m.start(2), m.end(2))
    for m in _ADDRESS_RE.finditer(text):
        value = m.group(1).rstrip()
        if len(value) >= 2:
            yield Span(PhiType.ADDRESS, m.start(1), m.start(1) + len(value))
