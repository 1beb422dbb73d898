"""Reading structured answers out of free text, shared by the extraction tasks.

The prompts ask for one record per line with fields joined by ``|``; models also
number their lines, use full-width bars or colons, or say "无" for none. Anything
that does not fit is dropped, so unparseable output simply scores as no prediction.

A list marker ("1. ", "- ", "2、") is removed only where it cannot be part of the
answer: gold entities themselves start with "*", "9." or "20、", so a marker is
dropped when whitespace follows it, or when the line's first field is not in the
source text as written but is without the marker. Gold answers fed back unchanged.
"""

from __future__ import annotations

import re

_MARKER = re.compile(r"^\s*(?:[-*•·]|\(?\d{1,3}[.、)）]|（\d{1,3}）)")
_FIELD_SPLIT = re.compile(r"\s*[|｜\t]\s*")
_FIRST_FIELD = re.compile(r"[|｜\t：:]")
NONE_WORDS = frozenset({"无", "没有", "none", "None", "空"})


def _unmarked(line: str, source: str | None) -> str:
    """``line`` without its list marker, where the marker cannot be answer text."""
    marker = _MARKER.match(line)
    if marker is None:
        return line
    rest = line[marker.end() :]
    if rest[:1].isspace():
        return rest
    if source is not None:
        first, rest_first = (_FIRST_FIELD.split(s, 1)[0].strip() for s in (line, rest))
        if first not in source and rest_first and rest_first in source:
            return rest
    return line


def answer_lines(output: str, source: str | None = None) -> list[str]:
    """Non-empty lines, list markers removed (see the module docstring); a lone "无"
    means no records. ``source`` is the input text the answer quotes from, if any."""
    lines = []
    for raw in output.splitlines():
        line = _unmarked(raw.strip(), source).strip().strip("。；;")
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
