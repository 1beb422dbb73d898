"""The store's own PHI check: a second line of defence behind the gateway's redactor.

The gateway redacts before it sends; if a record still holds something the shared
redactor recognises, the sender has a bug, and storing the record would put clear PHI
into training data. So it is refused (422) and named by field path only — the
offending text is never echoed back or logged. If the redactor itself fails, the
check fails closed: the request is refused (503) and nothing is stored. The check runs
in the redactor's worker pool under its deadline (`medgo_common.phi.guarded`), so
a text that takes too long is refused the same way rather than holding a worker.
"""

from __future__ import annotations

from collections.abc import Iterator

from medgo_common.errors import MedgoError
from medgo_common.phi import RedactionError
from medgo_common.phi.guarded import contains_phi_within
from medgo_common.schemas.feedback import InteractionRecord, RatingIn


def _record_texts(record: InteractionRecord, prefix: str) -> Iterator[tuple[str, str]]:
    for index, message in enumerate(record.messages):
        yield f"{prefix}messages.{index}.content", message.text()
    yield f"{prefix}response", record.response


def _rating_texts(rating: RatingIn) -> Iterator[tuple[str, str]]:
    yield "comment", rating.comment or ""
    yield "corrected_answer", rating.corrected_answer or ""


def _refuse_phi(texts: Iterator[tuple[str, str]]) -> None:
    try:
        for field, text in texts:
            if text and contains_phi_within(text):
                raise MedgoError(
                    422,
                    f"{field} still contains protected health information; redact it "
                    "with medgo_common.phi before sending",
                    code="phi_detected",
                    param=field,
                )
    except RedactionError as exc:
        raise MedgoError(
            503, "the PHI check failed; nothing was stored, retry later", code="phi_check_failed"
        ) from exc


def refuse_phi_in_records(records: list[InteractionRecord], *, batch: bool) -> None:
    """422 naming the first field (e.g. `records.3.response`) that holds PHI."""
    for index, record in enumerate(records):
        _refuse_phi(_record_texts(record, f"records.{index}." if batch else ""))


def refuse_phi_in_rating(rating: RatingIn) -> None:
    _refuse_phi(_rating_texts(rating))
