"""Audited, streamed exports of the ratings as TRL datasets (DPO, KTO, SFT).

`stream_export` writes the audit entry (who, filter) before the first row and its row
count when the stream ends — also when the client goes away half-way, in which case
the entry stays `completed = false`. Each kind's module documents its own rules; the
rule for conflicting ratings is in `exports.query`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from medgo_feedback import store
from medgo_feedback.exports import dpo, kto, sft
from medgo_feedback.exports.query import ExportFilter, rated_interactions


class ExportKind(StrEnum):
    dpo = "dpo"
    kto = "kto"
    sft = "sft"


_MODULES = {ExportKind.dpo: dpo, ExportKind.kto: kto, ExportKind.sft: sft}


def stream_export(
    *,
    factory: sessionmaker[Session],
    caller: str,
    kind: ExportKind,
    where: ExportFilter,
    batch_rows: int,
) -> Iterator[dict[str, Any]]:
    """Yield the export's rows; owns its sessions, since it outlives the request."""
    module = _MODULES[kind]
    with factory.begin() as session:
        audit_id = store.start_export_audit(
            session=session, caller=caller, kind=kind.value, filters=where.describe()
        )
    count = 0
    completed = False
    try:
        with factory() as session:
            items = rated_interactions(
                session=session, where=where, by_prompt=module.BY_PROMPT, batch_rows=batch_rows
            )
            for row in module.rows(items):
                count += 1
                yield row
        completed = True
    finally:
        with factory.begin() as session:
            store.finish_export_audit(
                session=session, audit_id=audit_id, row_count=count, completed=completed
            )


# One encoder for every row: `json.dumps` with any non-default option builds a new
# `JSONEncoder` per call, which is a measurable share of a million-row export.
_ENCODER = json.JSONEncoder(ensure_ascii=False)


def jsonl_chunks(rows: Iterator[dict[str, Any]], chunk_bytes: int = 64 * 1024) -> Iterator[bytes]:
    """JSONL in chunks of ~64 KB: one write per row would dominate a 1M-row export."""
    buffer: list[str] = []
    size = 0
    for row in rows:
        line = _ENCODER.encode(row) + "\n"
        buffer.append(line)
        size += len(line)
        if size >= chunk_bytes:
            yield "".join(buffer).encode()
            buffer, size = [], 0
    if buffer:
        yield "".join(buffer).encode()
