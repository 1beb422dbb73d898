"""store.py directly: idempotent ingest and the retention purge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from medgo_common.schemas.feedback import InteractionRecord, RatingIn
from medgo_feedback import store
from medgo_feedback.models import Interaction, Rating, RatingKey
from sqlalchemy import func, select


def _count(session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def test_same_id_twice_in_one_batch_is_stored_once(session, make_record) -> None:
    body = make_record()
    record = InteractionRecord.model_validate(body)
    counts = store.add_interactions(connection=session.connection(), records=[record, record])
    session.commit()
    assert (counts.inserted, counts.duplicates) == (1, 1)
    assert _count(session, Interaction) == 1


def test_prompt_key_ignores_content_part_layout() -> None:
    plain = [{"role": "user", "content": "胸痛"}]
    parts = [{"role": "user", "content": [{"type": "text", "text": "胸"}, {"type": "text",
                                                                          "text": "痛"}]}]
    assert store.prompt_key(plain) == store.prompt_key(parts)
    assert store.prompt_key(plain) != store.prompt_key([{"role": "system", "content": "胸痛"}])


def test_purge_removes_old_interactions_with_their_ratings(session, make_record) -> None:
    now = datetime.now(UTC)
    old = InteractionRecord.model_validate(
        make_record(created_at=(now - timedelta(days=400)).isoformat())
    )
    new = InteractionRecord.model_validate(make_record(created_at=now.isoformat()))
    store.add_interactions(connection=session.connection(), records=[old, new])
    for record in (old, new):
        for rater in ("dr1", "dr2"):
            rating = RatingIn(interaction_id=record.id, rater=rater, verdict="acceptable")
            store.upsert_rating(
                connection=session.connection(),
                rating=rating,
                idempotency_key=f"{record.id}-{rater}",
            )
    session.commit()
    counts = store.purge_older_than(session=session, cutoff=now - timedelta(days=365))
    session.commit()
    assert (counts.interactions, counts.ratings) == (1, 2)
    assert session.scalars(select(Interaction.id)).all() == [new.id]
    assert set(session.scalars(select(Rating.interaction_id))) == {new.id}
    assert _count(session, RatingKey) == 2
    assert store.get_interaction(session=session, interaction_id=uuid.uuid4()) is None
