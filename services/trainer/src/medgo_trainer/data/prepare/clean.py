"""Reading raw corpus files and the per-document cleaning filters.

Everything here is a pure function of one document, so the pipeline can run it in
worker processes. Documents are read lazily, one record at a time, so memory does not
grow with the corpus (a JSON *array* file is the one exception: it is parsed whole,
which is why large corpora should be shipped as JSONL).
"""

from __future__ import annotations

import csv
import json
import re
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".txt", ".csv")

# Fields that label a record rather than carry its text.
_NON_TEXT_KEYS = frozenset(
    {"id", "id_", "label", "department", "category", "icd-10 chapter", "from", "role"}
)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_WORD = re.compile(r"[A-Za-z0-9]+")
_SPACES = re.compile(r"[ \t\u3000]+")


class CorpusFormatError(ValueError):
    """A corpus file that cannot be read as documents (unknown suffix, broken JSON)."""


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    source: str


@dataclass(frozen=True)
class CleanConfig:
    """Thresholds of the cleaning filters; defaults suit short Chinese medical Q&A."""

    min_chars: int = 20
    max_chars: int = 20_000
    min_zh_ratio: float = 0.3
    # Lines that carry no medical content: site chrome, disclaimers, bare URLs.
    boilerplate: tuple[str, ...] = (
        r"^\s*(版权所有|免责声明|点击(查看|下载|咨询)|相关(阅读|推荐)|扫码|关注(我们|公众号))",
        r"^\s*https?://\S+\s*$",
        r"^\s*(copyright|all rights reserved)",
    )
    _compiled: tuple[re.Pattern[str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 0 <= self.min_zh_ratio <= 1:
            raise ValueError(f"min_zh_ratio must be within [0, 1], got {self.min_zh_ratio}")
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars {self.min_chars} exceeds max_chars {self.max_chars}")
        patterns = tuple(re.compile(p, re.IGNORECASE) for p in self.boilerplate)
        object.__setattr__(self, "_compiled", patterns)


def count_tokens(text: str) -> int:
    """Cheap tokenizer-free estimate: one per CJK character plus one per latin word.

    Byte-level BPE on Chinese gives roughly one token per character, so this tracks the
    real count closely enough for a removal report without loading a tokenizer in
    every worker.
    """
    return len(_CJK.findall(text)) + len(_WORD.findall(text))


def zh_ratio(text: str) -> float:
    """Share of CJK characters among the non-space characters."""
    visible = sum(1 for ch in text if not ch.isspace())
    return len(_CJK.findall(text)) / visible if visible else 0.0


def normalise(text: str) -> str:
    """NFKC (full-width letters/digits → ASCII), uniform spaces, no blank lines."""
    text = unicodedata.normalize("NFKC", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.splitlines())
    return "\n".join(line for line in lines if line)


def clean_text(text: str, config: CleanConfig) -> tuple[str | None, str | None]:
    """Return (cleaned text, None) or (None, the name of the filter that dropped it)."""
    text = normalise(text)
    kept = [ln for ln in text.split("\n") if not any(p.search(ln) for p in config._compiled)]
    if len(kept) < len(text.split("\n")) and not kept:
        return None, "boilerplate"
    text = "\n".join(kept)
    if not config.min_chars <= len(text) <= config.max_chars:
        return None, "length"
    if zh_ratio(text) < config.min_zh_ratio:
        return None, "language"
    return text, None


def record_text(record: object) -> str:
    """
    The text of one record: its string values joined, labels and ids left out.

    Values may nest, as chat corpora do: a list of strings (Huatuo's `output: [...]`) or
    of turn objects (ShareGPT's `conversations: [{from, value}]`) contributes each text.
    """
    if isinstance(record, str):
        return record
    if not isinstance(record, dict):
        raise CorpusFormatError(f"expected a JSON object or string, got {type(record).__name__}")
    return "\n".join(_texts(record))


def _texts(value: object) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key.lower() not in _NON_TEXT_KEYS:
                yield from _texts(item)


def _json_records(path: Path) -> Iterator[object]:
    with path.open(encoding="utf-8") as fh:
        first = fh.read(1)
        while first.isspace():
            first = fh.read(1)
        fh.seek(0)
        if first == "[":
            try:
                yield from json.load(fh)
            except json.JSONDecodeError as exc:
                raise CorpusFormatError(f"{path}: invalid JSON array: {exc}") from exc
            return
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise CorpusFormatError(f"{path}:{lineno}: invalid JSON line: {exc}") from exc


def _txt_records(path: Path) -> Iterator[object]:
    """One document per non-empty line; lines that are JSON objects are read as records."""
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            if line.startswith("{"):
                try:
                    yield json.loads(line)
                    continue
                except json.JSONDecodeError:
                    pass
            yield line


def _csv_records(path: Path) -> Iterator[object]:
    with path.open(encoding="utf-8", newline="") as fh:
        yield from csv.DictReader(fh)


def record_reader(path: Path) -> Callable[[Path], Iterator[object]]:
    """The record reader for the file's format; checked up front, before anything is written."""
    readers = {".jsonl": _json_records, ".json": _json_records, ".txt": _txt_records,
               ".csv": _csv_records}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise CorpusFormatError(
            f"{path}: unsupported corpus format {path.suffix!r}; use one of {SUPPORTED_SUFFIXES}"
        )
    return reader


def read_documents(path: Path) -> Iterator[Document]:
    """Stream the documents of one corpus file (.jsonl, .json, .txt or .csv)."""
    for index, record in enumerate(record_reader(path)(path)):
        yield Document(id=f"{path.stem}:{index}", text=record_text(record), source=path.name)


def iter_corpus_files(inputs: list[Path]) -> Iterator[Path]:
    """Expand directories (recursively, sorted for reproducible shards) into files."""
    for item in inputs:
        if item.is_dir():
            yield from sorted(p for p in item.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        elif item.is_file():
            yield item
        else:
            raise CorpusFormatError(f"{item}: no such corpus file or directory")
