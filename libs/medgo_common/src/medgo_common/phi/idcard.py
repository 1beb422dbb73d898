"""Chinese resident identity numbers (GB 11643-1999).

Eighteen-digit numbers are everywhere in hospital text (order numbers, barcodes,
lab accession ids), so a bare digit pattern would redact far too much. The standard
gives every valid ID two independent checks we can use instead: an embedded birth
date (YYYYMMDD at positions 7-14) and an ISO 7064 MOD 11-2 check character. The
15-digit form issued before 1999 has no check digit, so for it we check the region
code's first digit and the six-digit birth date (YYMMDD, 19xx).
"""

from __future__ import annotations

import datetime as dt

# Weights 2^(17-i) mod 11 for positions 1..17, and the check character for each
# remainder of the weighted sum mod 11 (GB 11643-1999, section 4.2).
_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"

# First digit of the administrative division code (1 north ... 8 special regions).
_REGION_FIRST_DIGITS = frozenset("12345678")


def check_char(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits of an ID number."""
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        born = dt.date(year, month, day)
    except ValueError:
        return False
    return dt.date(1880, 1, 1) <= born <= dt.date.today()


def is_valid_id18(number: str) -> bool:
    """True for an 18-character ID whose region, birth date and check character agree."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    if number[0] not in _REGION_FIRST_DIGITS:
        return False
    if not _is_date(int(number[6:10]), int(number[10:12]), int(number[12:14])):
        return False
    return check_char(number[:17]) == number[17].upper()


def is_valid_id15(number: str) -> bool:
    """True for a legacy 15-digit ID with a plausible region and 19YYMMDD birth date."""
    if len(number) != 15 or not number.isdigit() or number[0] not in _REGION_FIRST_DIGITS:
        return False
    return _is_date(1900 + int(number[6:8]), int(number[8:10]), int(number[10:12]))
