"""Postal addresses, found in one linear pass.

An address is a chain of administrative units (省/市/区/县/镇/街道) followed by at
least one street-level unit (路/街/巷/村/小区 ... 号/栋/单元/室). A city or district
alone ("北京市卫健委", "朝阳区医院") is not treated as an address: it identifies no
household and is everywhere in ordinary medical text. Chinese has no spaces, so a
match can start too early ("家住北京市" reads as one unit); we cut it back to the
last address cue (住址, 家住, ...) or to a known provincial-level name inside it.

Why a scanner and not one regex: the earlier single pattern (units of lazy length,
each repeated up to five times) backtracked through every way of cutting a run of
place names into units, ~0.4 ms per character on "省省省…" or back-to-back city
names, which let one long text stall a worker. Here the text is cut once into units
at the unit suffixes (leftmost, longest suffix first), and the chain rule is applied
to the list of units: every character is looked at a bounded number of times.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from medgo_common.phi.patterns import PhiType, Span

# A unit's own name: no particles or motion verbs, which mark the text before an address.
_EXCLUDED = "的在到住址于从往去来是与及了我他她"
_RUN_RE = re.compile(rf"(?:(?![{_EXCLUDED}])[\u4e00-\u9fff\dA-Za-z-])+")

_ADMIN, _STREET, _NUMBER = "admin", "street", "number"
_SUFFIXES = {
    **dict.fromkeys(
        ("省", "自治区", "特别行政区", "市", "自治州", "地区", "盟", "区", "县", "旗", "镇", "乡",
         "街道"),
        _ADMIN,
    ),
    **dict.fromkeys(
        ("大街", "大道", "路", "街", "巷", "弄", "胡同", "村", "屯", "小区", "花园", "家园",
         "新村", "苑", "公寓", "大厦"),
        _STREET,
    ),
    **dict.fromkeys(
        ("号院", "号楼", "号", "栋", "幢", "座", "单元", "层", "楼", "室", "户", "组"), _NUMBER
    ),
}  # fmt: skip
# Longest first, so "小区" wins over "区" and "街道" over "街" at the same position.
_SUFFIX_RE = re.compile("|".join(sorted(_SUFFIXES, key=len, reverse=True)))
# Every address holds a street unit: runs without one are skipped at C speed.
_STREET_HINT_RE = re.compile("|".join(s for s, kind in _SUFFIXES.items() if kind == _STREET))
_NAME_LIMIT = {_ADMIN: 7, _STREET: 6, _NUMBER: 6}
_NAME_TAIL_RE = {
    _ADMIN: re.compile(r"[^-]{1,7}$"),
    _STREET: re.compile(r"[^-]{1,6}$"),
    _NUMBER: re.compile(r"[\d\-一二三四五六七八九十]{1,6}$"),
}
# Chain shape: up to 5 administrative units, 1-2 street units, up to 5 numbers; an
# address needs an administrative unit before its street or a number after it
# (street units alone are too common in prose: 治疗组, 思路).
_MAX_ADMIN, _MAX_STREET, _MAX_NUMBER = 5, 2, 5

_CUES = ("现住址", "家庭住址", "住址", "地址", "现住", "家住", "住在", "居住在", "居住于", "户籍")
_PROVINCES = (
    "北京", "天津", "上海", "重庆", "河北", "山西", "辽宁", "吉林", "黑龙江", "江苏", "浙江",
    "安徽", "福建", "江西", "山东", "河南", "湖北", "湖南", "广东", "海南", "四川", "贵州",
    "云南", "陕西", "甘肃", "青海", "台湾", "内蒙古", "广西", "西藏", "宁夏", "新疆", "香港",
    "澳门",
)  # fmt: skip
_MIN_LENGTH = 5


class _Unit(NamedTuple):
    kind: str
    start: int
    end: int


def _units(text: str, start: int, end: int) -> list[list[_Unit]]:
    """The units of one run, grouped into chains of units that touch each other."""
    chains: list[list[_Unit]] = []
    cursor = start  # where the pending unit name begins
    for m in _SUFFIX_RE.finditer(text, start, end):
        kind = _SUFFIXES[m.group()]
        last = chains[-1][-1] if chains else None
        if m.start() == cursor:
            if last is not None and last.end == cursor:  # 黄村 + 镇, 88号 + 楼: one unit
                chains[-1][-1] = _Unit(kind, last.start, m.end())
                cursor = m.end()
            continue  # a bare suffix otherwise reads as part of the next unit's name
        window = text[max(cursor, m.start() - _NAME_LIMIT[kind]) : m.start()]
        tail = _NAME_TAIL_RE[kind].search(window)
        if tail is None:  # 治疗组: not a number before 组, keep reading
            continue
        unit = _Unit(kind, m.start() - len(tail.group()), m.end())
        if last is not None and last.end == unit.start:
            chains[-1].append(unit)
        else:
            chains.append([unit])
        cursor = m.end()
    return chains


def _chain_addresses(chain: list[_Unit]) -> Iterator[tuple[int, int]]:
    """(start, end) of each address in a chain of touching units.

    Addresses that touch are one address ("…建国路297号" + "阳光小区16栋131室").
    """
    pending: tuple[int, int] | None = None
    for start, end in _chain_matches(chain):
        if pending is not None and pending[1] == start:
            pending = (pending[0], end)
            continue
        if pending is not None:
            yield pending
        pending = (start, end)
    if pending is not None:
        yield pending


def _chain_matches(chain: list[_Unit]) -> Iterator[tuple[int, int]]:
    """Each admin* street{1,2} number* group that has an admin unit or a number."""
    taken = 0
    i = 0
    while i < len(chain):
        if chain[i].kind != _STREET:
            i += 1
            continue
        first = i
        while first > taken and i - first < _MAX_ADMIN and chain[first - 1].kind == _ADMIN:
            first -= 1
        streets_end = i
        while (
            streets_end < len(chain)
            and streets_end - i < _MAX_STREET
            and chain[streets_end].kind == _STREET
        ):
            streets_end += 1
        last = streets_end
        while last < len(chain) and last - streets_end < _MAX_NUMBER and (
            chain[last].kind == _NUMBER
        ):
            last += 1
        if first < i or last > streets_end:
            yield chain[first].start, chain[last - 1].end
            taken = i = last
        else:
            i += 1


def _trim_start(candidate: str) -> int:
    """Offset where the address really starts inside a too-early match."""
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
    for run in _RUN_RE.finditer(text):
        if _STREET_HINT_RE.search(text, run.start(), run.end()) is None:
            continue
        for chain in _units(text, run.start(), run.end()):
            for start, end in _chain_addresses(chain):
                start += _trim_start(text[start:end])
                if end - start >= _MIN_LENGTH:
                    yield Span(PhiType.ADDRESS, start, end)
