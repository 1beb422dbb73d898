"""Declaring a builder's input files and checking them before anything is built.

A check reads only what it needs to prove the file is usable (a CSV header, the first
JSON record), so `build-sft` can reject a wrong file in a second instead of failing
half-way through a build with the output directory already written.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from medgo_trainer.data.sft.example import SourceError

Format = Literal["csv", "json", "tsv"]


@dataclass(frozen=True)
class SourceFile:
    """A file under the data directory (or absolute), its format and required fields.

    ``json`` covers a JSON array and JSONL alike (both occur, often under ``.json``).
    """

    path: str
    fmt: Format
    fields: tuple[str, ...] = ()

    def resolve(self, data_dir: Path) -> Path:
        return data_dir / self.path


def _first_json_record(path: Path) -> Any:
    """The first record of JSONL or of a JSON array written one record per line; any
    other layout (a whole array on one line, pretty-printed) is parsed whole."""
    with path.open(encoding="utf-8") as fh:
        for raw in fh:
            line = raw.strip().removeprefix("[").rstrip(",").removesuffix("]").rstrip(",")
            if not line:
                continue  # blank, "[" or "[]"
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
        else:
            return None
    whole = json.loads(path.read_text(encoding="utf-8"))
    if isinstance(whole, list):
        return whole[0] if whole else None
    return whole


def _first_record(path: Path, fmt: Format) -> tuple[Any, list[str] | None]:
    """The first record, and for CSV the header (checked even when no row follows)."""
    if fmt == "json":
        return _first_json_record(path), None
    with path.open(encoding="utf-8", newline="") as fh:
        if fmt == "csv":
            reader = csv.DictReader(fh)
            return next(reader, None), list(reader.fieldnames or [])
        row = next(csv.reader(fh, delimiter="\t"), None)
        return ({str(i): v for i, v in enumerate(row)} if row else None), None


def check_file(source: str, spec: SourceFile, data_dir: Path) -> Path:
    """The file's path once it exists, parses, is non-empty and has ``spec.fields``."""
    path = spec.resolve(data_dir)
    if not path.is_file():
        raise SourceError(f"source {source!r}: {path} does not exist (check --data-dir)")
    try:
        record, header = _first_record(path, spec.fmt)
    except (json.JSONDecodeError, UnicodeDecodeError, csv.Error) as exc:
        raise SourceError(f"source {source!r}: {path} is not valid {spec.fmt}: {exc}") from exc
    if header:
        _require(source, path, spec.fields, header)
    if record is None:
        raise SourceError(f"source {source!r}: {path} is empty")
    if not isinstance(record, dict):
        raise SourceError(f"source {source!r}: {path} holds {type(record).__name__} records, "
                          f"expected objects with fields {list(spec.fields)}")
    _require(source, path, spec.fields, list(record))
    return path


def _require(source: str, path: Path, wanted: tuple[str, ...], found: list[str]) -> None:
    missing = [f for f in wanted if f not in found]
    if missing:
        raise SourceError(f"source {source!r}: {path} records lack field(s) {missing} "
                          f"(found {sorted(found)}); is it the right file?")
