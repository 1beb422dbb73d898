"""The feedback service's Prometheus metrics, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter


class FeedbackMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.interactions = Counter(
            "medgo_feedback_interactions_total",
            "interaction records received, by result (inserted, duplicate)",
            ["result"],
            registry=registry,
        )
        self.ratings = Counter(
            "medgo_feedback_ratings_total",
            "ratings received, by outcome (created, updated, replayed)",
            ["outcome"],
            registry=registry,
        )
        self.export_rows = Counter(
            "medgo_feedback_export_rows_total",
            "rows streamed by exports, by kind (dpo, kto, sft)",
            ["kind"],
            registry=registry,
        )
