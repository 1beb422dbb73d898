"""PHI types and the pattern detectors for structured identifiers.

Each detector is a function `text -> Iterator[Span]` that yields only the identifying
part of a match (the number, not its label), so "住院号：ZY2023001" keeps its label
and stays readable after redaction. Precision comes from context rather than from
bare digit shapes: record numbers need their label, landlines need an area code or a
phone label, ID numbers need a valid checksum (see `idcard`), birth dates need a
birth cue. Digits use `\\d`, which also matches full-width digits (１３８…).
Whitespace between a label and its value is bounded (`\\s{0,3}`, never `\\s*`): two
unbounded runs in a row made a long run of spaces cost cubic time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import StrEnum
from typing import NamedTuple

from medgo_common.phi.idcard import is_valid_id15, is_valid_id18


class PhiType(StrEnum):
    """Kinds of protected health information; the value is the metrics label."""

    NAME = "name"
    ID_CARD = "id_card"
    PHONE = "phone"
    MEDICAL_RECORD = "medical_record"
    ADMISSION = "admission"
    OUTPATIENT = "outpatient"
    BED = "bed"
    ADDRESS = "address"
    EMAIL = "email"
    BIRTH_DATE = "birth_date"

    @property
    def placeholder(self) -> str:
        """The typed placeholder that replaces a span, e.g. `[姓名]`."""
        return _PLACEHOLDERS[self]


_PLACEHOLDERS = {
    PhiType.NAME: "[姓名]",
    PhiType.ID_CARD: "[身份证号]",
    PhiType.PHONE: "[电话]",
    PhiType.MEDICAL_RECORD: "[病历号]",
    PhiType.ADMISSION: "[住院号]",
    PhiType.OUTPATIENT: "[门诊号]",
    PhiType.BED: "[床号]",
    PhiType.ADDRESS: "[地址]",
    PhiType.EMAIL: "[邮箱]",
    PhiType.BIRTH_DATE: "[出生日期]",
}


class Span(NamedTuple):
    """A detected PHI span: `text[start:end]` is the identifying part."""

    type: PhiType
    start: int
    end: int


# Digits not glued to other digits or to a decimal point / letter (so "3.13800138000"
# or a 20-digit barcode never yields a phone or ID number from its middle).
_NO_NUM_BEFORE = r"(?<![\d.A-Za-z])"
_NO_NUM_AFTER = r"(?![\d.]?\d)"

_ID_RE = re.compile(_NO_NUM_BEFORE + r"(\d{17}[\dXx]|\d{15})(?![\dA-Za-z])")

_MOBILE_RE = re.compile(
    r"(?<![\d.A-Za-z+])((?:(?:\+|00)?86[\s-]?)?1[3-9]\d[\s-]?\d{4}[\s-]?\d{4})" + _NO_NUM_AFTER
)
# Landlines need their area code (0 + 2-3 digits, optionally in brackets) or the
# 400/800 service prefix; an optional extension ("转123", "-8012") belongs to them.
_LANDLINE_RE = re.compile(
    _NO_NUM_BEFORE
    + r"((?:[(（]0\d{2,3}[)）]\s?|0\d{2,3}[\s-]?)\d{7,8}(?:(?:转|-|ext\.?)\d{1,5})?"
    + r"|[48]00[\s-]?\d{3}[\s-]?\d{4})"
    + _NO_NUM_AFTER
)
# A bare 7-8 digit local number counts only right after a phone label.
_LABELLED_LOCAL_RE = re.compile(
    r"(?:电话|座机|手机|联系方式|联系电话|Tel|TEL|tel)(?:号码?)?(?:为|是)?\s{0,3}[:：]?\s{0,3}"
    r"(\d{7,8})" + _NO_NUM_AFTER
)

# Starts only at the beginning of a run of address characters, so a long digit or
# letter run is scanned once rather than once per position.
_EMAIL_RE = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)

_RECORD_LABELS = {
    "病历号": PhiType.MEDICAL_RECORD,
    "病案号": PhiType.MEDICAL_RECORD,
    "病历编号": PhiType.MEDICAL_RECORD,
    "住院号": PhiType.ADMISSION,
    "住院编号": PhiType.ADMISSION,
    "门诊号": PhiType.OUTPATIENT,
    "门诊编号": PhiType.OUTPATIENT,
    "就诊卡号": PhiType.OUTPATIENT,
}
_RECORD_RE = re.compile(
    "(" + "|".join(_RECORD_LABELS) + r")(?:码)?(?:为|是)?\s{0,3}[:：#]?\s{0,3}"
    r"([A-Za-z]{0,4}-?\d[\dA-Za-z-]{2,19})(?![\dA-Za-z])"
)

# "12床", "3号床", "+12床" (extra bed), or the label form "床号：12".
_BED_RE = re.compile(r"(?<![\d.])(\+?\d{1,3}(?:号)?床)(?!位|单|旁|边|头|尾|上(?!官)|下)")
_BED_LABEL_RE = re.compile(r"床号\s{0,3}[:：]?\s{0,3}(\+?\d{1,3})(?!\d)")

_DATE = (
    r"(?:\d{4}\s{0,3}年\s{0,3}\d{1,2}\s{0,3}月(?:\s{0,3}\d{1,2}\s{0,3}[日号])?"
    r"|\d{4}[-/.]\d{1,2}[-/.]\d{1,2}"
    r"|[〇零一二三四五六七八九]{4}年[一二三四五六七八九十]{1,2}月(?:[一二三四五六七八九十]{1,3}[日号])?)"
)
_BIRTH_RE = re.compile(
    r"(?:出生日期|出生年月日?|生日|出生于|生于|DOB|出生)\s{0,3}(?:为|是)?\s{0,3}[:：]?\s{0,3}"
    "(" + _DATE + ")"
)
# "1980年5月3日出生" / "1980-05-03生": the cue after the date.
_BIRTH_AFTER_RE = re.compile("(" + _DATE + r")\s{0,3}(?:出生|生人|生(?=[，,。；;、）)\s]|$))")


def find_id_cards(text: str) -> Iterator[Span]:
    """Resident ID numbers that pass the GB 11643 checks (see `idcard`)."""
    for m in _ID_RE.finditer(text):
        number = m.group(1)
        if is_valid_id18(number) or is_valid_id15(number):
            yield Span(PhiType.ID_CARD, m.start(1), m.end(1))


def find_phones(text: str) -> Iterator[Span]:
    """Mobile numbers, landlines with an area code, 400/800 lines, labelled local numbers."""
    for regex in (_MOBILE_RE, _LANDLINE_RE, _LABELLED_LOCAL_RE):
        for m in regex.finditer(text):
            yield Span(PhiType.PHONE, m.start(1), m.end(1))


def find_emails(text: str) -> Iterator[Span]:
    """E-mail addresses."""
    for m in _EMAIL_RE.finditer(text):
        yield Span(PhiType.EMAIL, m.start(), m.end())


def find_record_numbers(text: str) -> Iterator[Span]:
    """Medical-record, admission and outpatient numbers, typed by their label."""
    for m in _RECORD_RE.finditer(text):
        yield Span(_RECORD_LABELS[m.group(1)], m.start(2), m.end(2))


def find_beds(text: str) -> Iterator[Span]:
    """Bed numbers: they identify an in-patient within a ward on a given day."""
    for regex in (_BED_RE, _BED_LABEL_RE):
        for m in regex.finditer(text):
            yield Span(PhiType.BED, m.start(1), m.end(1))


def find_birth_dates(text: str) -> Iterator[Span]:
    """Dates with a birth cue; visit and onset dates are clinical facts, kept."""
    for regex in (_BIRTH_RE, _BIRTH_AFTER_RE):
        for m in regex.finditer(text):
            yield Span(PhiType.BIRTH_DATE, m.start(1), m.end(1))
