"""Postal addresses.

An address is a chain of administrative units (省/市/区/县/镇/街道) followed by at
least one street-level unit (路/街/巷/村/小区 ... 号/栋/单元/室). A city or district
alone ("北京市卫健委", "朝阳区医院") is not treated as an address: it identifies no
household and is everywhere in ordinary medical text. Chinese has no spaces, so a
match can start too early ("家住北京市" reads as one unit); we cut it back to the
last address cue (住址, 家住, ...) or to a known provincial-level name inside it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from medgo_common.phi.patterns import PhiType, Span

# A unit's own name: no particles or motion verbs, which mark the text before an address.
_UNIT_CHAR = r"(?:(?![的在到住址于从往去来是与及了我他她])[\u4e00-\u9fff\dA-Za-z])"
_ADMIN = _UNIT_CHAR + r"{1,7}?(?:省|自治区|特别行政区|市|自治州|地区|盟|区|县|旗|镇|乡|街道)"
_STREET = (
    _UNIT_CHAR + r"{1,6}?"
    r"(?:大街|大道|路|街|巷|弄|胡同|村|屯|小区|花园|家园|新村|苑|公寓|大厦)"
)
_NUMBER = r"[\d\-一二三四五六七八九十]{1,6}(?:号院|号楼|号|栋|幢|座|单元|层|楼|室|户|组)"
# Street units alone are too common in prose (治疗组, 思路): an address needs an
# administrative unit before its street or a house number after it.
_ADDRESS_RE = re.compile(
    f"(?:{_ADMIN}){{1,5}}(?:{_STREET}){{1,2}}(?:{_NUMBER}){{0,5}}"
    f"|(?:{_STREET}){{1,2}}(?:{_NUMBER}){{1,5}}"
)

_CUES = ("现住址", "家庭住址", "住址", "地址", "现住", "家住", "住在", "居住在", "居住于", "户籍")
_PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港",
    "澳门",
)  # fmt: skip
_MIN_LENGTH = 5


def _trim_start(candidate: str) -> int:
    """Offset where the address really starts inside a too-early regex match."""
    cut = 0
    for cue in _CUES:
        idx = candidate.rfind(cue)
        if idx >= 0:
            cut = max(cut, idx + len(cue))
    rest = candidate[cut:]
    positions = [i for i in (rest.find(p) for p in _PROVINCES) if i > 0]
    return cut + (min(positions) if positions else 0)


def find_addresses(text: str) -> Iterator[Span]:
    """Street-level addresses, optionally preceded by their administrative units."""
    for m in _ADDRESS_RE.finditer(text):
        start = m.start() + _trim_start(m.group())
        if m.end() - start >= _MIN_LENGTH:
            yield Span(PhiType.ADDRESS, start, m.end())
