"""Export rules: conflicting ratings, DPO pairing, KTO and SFT rows, filters, audit.

One scenario, two prompts (times in minutes after T0):
  P1: i1 acceptable (1 rater)                       -> chosen pool
      i2 unacceptable (2 raters), no correction     -> paired with i1 (round robin)
      i3 unacceptable, two corrections              -> paired with the newest correction
      i4 tie 1:1                                    -> unacceptable, paired with i5
      i5 acceptable 2:1 (minority correction unused) -> chosen pool
  P2 (checkpoint ck-b):
      i6 unacceptable, no acceptable answer to P2   -> no pair
      i7 unacceptable, "correction" = response      -> no pair, not a correction
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from medgo_common.schemas.feedback import InteractionRecord, RatingIn
from medgo_feedback import store
from medgo_feedback.exports import ExportKind, stream_export
from medgo_feedback.exports.query import ExportFilter
from medgo_feedback.models import ExportAudit
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
P1 = [
    {"role": "system", "content": "你是医生助手"},
    {"role": "user", "content": "感冒能用抗生素吗？"},
]
P2 = [{"role": "user", "content": "孕妇能吃布洛芬吗？"}]
A = "assistant"


@pytest.fixture
def scenario(session, make_record) -> dict[str, str]:
    plan = {
        "i1": (P1, "ck-a", [("dr1", "acceptable", None)]),
        "i2": (P1, "ck-a", [("dr1", "unacceptable", None), ("dr2", "unacceptable", None)]),
        "i3": (P1, "ck-a", [("dr1", "unacceptable", "C3"), ("dr2", "unacceptable", "C3b")]),
        "i4": (P1, "ck-a", [("dr1", "acceptable", None), ("dr2", "unacceptable", None)]),
        "i5": (
            P1,
            "ck-a",
            [
                ("dr1", "acceptable", None),
                ("dr2", "acceptable", None),
                ("dr3", "unacceptable", "X"),
            ],
        ),
        "i6": (P2, "ck-b", [("dr1", "unacceptable", None)]),
        "i7": (P2, "ck-b", [("dr1", "unacceptable", "r7")]),
    }
    records = [
        InteractionRecord.model_validate(
            make_record(
                id=str(uuid.uuid4()),
                created_at=(T0 + timedelta(minutes=int(name[1]))).isoformat(),
                messages=messages,
                checkpoint_id=checkpoint,
                response=f"r{name[1]}",
            )
        )
        for name, (messages, checkpoint, _) in plan.items()
    ]
    store.add_interactions(connection=session.connection(), records=records)
    session.commit()
    ids = {name: str(record.id) for name, record in zip(plan, records, strict=True)}
    for name, (_, _, votes) in plan.items():
        for rater, verdict, correction in votes:
            rating = RatingIn(
                interaction_id=ids[name], rater=rater, verdict=verdict, corrected_answer=correction
            )
            store.upsert_rating(
                connection=session.connection(), rating=rating, idempotency_key=None
            )
            session.commit()
    return ids


def _export(session, kind: str, **where) -> list[dict]:
    factory = sessionmaker(session.get_bind(), expire_on_commit=False)
    rows = stream_export(
        factory=factory,
        caller="test",
        kind=ExportKind(kind),
        where=ExportFilter(**where),
        batch_rows=2,
    )
    return list(rows)


def _pair(chosen: str, rejected: str, prompt=P1) -> dict:
    return {
        "prompt": prompt,
        "chosen": [{"role": A, "content": chosen}],
        "rejected": [{"role": A, "content": rejected}],
    }


def test_dpo_pairs_follow_the_rules(session, scenario) -> None:
    assert _export(session, "dpo") == [
        _pair("r1", "r2"),
        _pair("C3b", "r3"),
        _pair("r5", "r4"),
    ]


def test_dpo_min_raters_drops_single_rated_interactions(session, scenario) -> None:
    assert _export(session, "dpo", min_raters=2) == [
        _pair("r5", "r2"),
        _pair("C3b", "r3"),
        _pair("r5", "r4"),
    ]


def _kto(prompt, text, label) -> dict:
    return {"prompt": prompt, "completion": [{"role": A, "content": text}], "label": label}


def test_kto_labels_every_rated_answer(session, scenario) -> None:
    assert _export(session, "kto") == [
        _kto(P1, "r1", True),
        _kto(P1, "r2", False),
        _kto(P1, "r3", False),
        _kto(P1, "C3b", True),
        _kto(P1, "r4", False),
        _kto(P1, "r5", True),
        _kto(P2, "r6", False),
        _kto(P2, "r7", False),
    ]


def test_sft_keeps_only_answers_a_clinician_signs(session, scenario) -> None:
    assert _export(session, "sft") == [
        {"messages": [*P1, {"role": A, "content": answer}]} for answer in ("r1", "C3b", "r5")
    ]


def test_filters_by_checkpoint_and_time_window(session, scenario) -> None:
    only_b = _export(session, "kto", checkpoint="ck-b")
    assert [row["completion"][0]["content"] for row in only_b] == ["r6", "r7"]
    window = _export(
        session, "kto", since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=4)
    )
    assert [row["completion"][0]["content"] for row in window] == ["r2", "r3", "C3b"]


def test_exports_are_audited_even_when_aborted(session, scenario) -> None:
    _export(session, "sft", checkpoint="ck-a")
    factory = sessionmaker(session.get_bind())
    rows = stream_export(
        factory=factory, caller="trainer", kind=ExportKind.kto, where=ExportFilter(), batch_rows=2
    )
    next(rows)
    rows.close()
    session.expire_all()
    audits = session.scalars(select(ExportAudit).order_by(ExportAudit.id)).all()
    assert [(a.caller, a.kind, a.row_count, a.completed) for a in audits] == [
        ("test", "sft", 3, True),
        ("trainer", "kto", 1, False),
    ]
    assert audits[0].filters == {
        "since": None, "until": None, "checkpoint": "ck-a", "min_raters": 1
    }
    assert audits[0].finished_at is not None
