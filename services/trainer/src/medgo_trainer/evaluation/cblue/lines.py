"""Reading structured answers out of free text, shared by the extraction tasks.

The prompts ask for one record per line with fields joined by ``|``; models also
number their lines, use full-width bars or colons, or say "无" for none. Anything
that does not fit is dropped, so unparseable output simply scores as no prediction.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,3}[.、)）]|（\d{1,3}）)\s*")
_FIELD_SPLIT = re.compile(r"\s*[|｜\t]\s*")
NONE_WORDS = frozenset({"无", "没有", "none", "None", "空"})


def answer_lines(output: str) -> list[str]:
    """Non-empty lines without list markers; a lone "无" means no records."""
    lines = []
    for raw in output.splitlines():
        line = _MARKER.sub("", raw).strip().strip("。；;")
        if line and line not in NONE_WORDS:
            lines.append(line)
    return lines


def fields(line: str, n: int) -> list[str] | None:
    """Split a line into exactly ``n`` non-empty fields on ``|``, or None."""
    parts = [p.strip() for p in _FIELD_SPLIT.split(line)]
    if len(parts) != n or not all(parts):
        return None
    return parts


def split_pair(line: str) -> tuple[str, str] | None:
    """``实体：类型`` (also ``:`` or ``|``): split on the last separator."""
    match = re.match(r"^(.+?)\s*[：:|｜\t]\s*([^：:|｜\t]+)$", line)
    if match is None:
        return None
    return match.group(1).strip(), match.group(2).strip()
