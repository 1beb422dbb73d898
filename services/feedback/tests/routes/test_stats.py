"""GET /v1/stats: volume per day, acceptance per checkpoint/department, reasons."""

from __future__ import annotations

from datetime import UTC, datetime


def test_stats_count_ratings(client, make_record, make_rating) -> None:
    a = make_record(checkpoint_id="ck-a", department="心内科")
    b = make_record(checkpoint_id="ck-b", department="儿科")
    client.post("/v1/interactions", json={"records": [a, b]})
    client.post("/v1/ratings", json=make_rating(a["id"], rater="dr1"))
    client.post(
        "/v1/ratings",
        json=make_rating(a["id"], rater="dr2", verdict="unacceptable",
                         reasons=["factual_error", "incomplete"]),
    )
    client.post(
        "/v1/ratings",
        json=make_rating(b["id"], rater="dr1", verdict="unacceptable", reasons=["incomplete"]),
    )
    stats = client.get("/v1/stats").json()
    today = datetime.now(UTC).date().isoformat()
    assert stats["ratings_per_day"] == [{"day": today, "ratings": 3}]
    assert stats["by_checkpoint"] == [
        {"key": "ck-a", "ratings": 2, "acceptable": 1, "acceptance_rate": 0.5},
        {"key": "ck-b", "ratings": 1, "acceptable": 0, "acceptance_rate": 0.0},
    ]
    assert {row["key"]: row["ratings"] for row in stats["by_department"]} == {
        "心内科": 2, "儿科": 1
    }
    assert stats["reasons"] == {"factual_error": 1, "incomplete": 2}
    later = client.get("/v1/stats", params={"since": "2100-01-01T00:00:00Z"}).json()
    assert later == {"ratings_per_day": [], "by_checkpoint": [], "by_department": [],
                     "reasons": {}}
