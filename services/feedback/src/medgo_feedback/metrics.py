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
        self.write_errors = Counter(
            "medgo_feedback_write_errors_total",
            "writes refused because of the database, by reason (unavailable, conflict)",
            ["reason"],
            registry=registry,
        )
        self.exports = Counter(
            "medgo_feedback_exports_total",
            "exports started, by kind and calling service (the audit trail's who, as a metric)",
            ["kind", "caller"],
            registry=registry,
        )
        self.export_rows = Counter(
            "medgo_feedback_export_rows_total",
            "rows streamed by exports, by kind (dpo, kto, sft)",
            ["kind"],
            registry=registry,
        )
