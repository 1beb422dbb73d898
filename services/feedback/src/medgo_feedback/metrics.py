"""The feedback service's Prometheus metrics, on the app's own registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from medgo_feedback.retention import OldestRecord
from medgo_feedback.settings import FeedbackSettings

_DAY_S = 86400


class FeedbackMetrics:
    def __init__(
        self, registry: CollectorRegistry, settings: FeedbackSettings, oldest: OldestRecord
    ) -> None:
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
        # The online gate, as of its last evaluation (GET /v1/stats/canary-gate).
        self.gate_acceptance = Gauge(
            "medgo_feedback_gate_acceptance_rate",
            "acceptance rate of a checkpoint in the last gate evaluation, by arm",
            ["checkpoint", "arm"], registry=registry,
        )
        self.gate_ratings = Gauge(
            "medgo_feedback_gate_ratings", "ratings of a checkpoint in the last gate evaluation",
            ["checkpoint", "arm"], registry=registry,
        )
        self.gate_difference = Gauge(
            "medgo_feedback_gate_difference",
            "candidate − stable acceptance (bound: estimate, low, high; Newcombe interval)",
            ["stable", "candidate", "bound"], registry=registry,
        )
        self.gate_passed = Gauge(
            "medgo_feedback_gate_passed",
            "1 when the canary may go to 100 % (non-inferior or overridden), else 0",
            ["stable", "candidate"], registry=registry,
        )
        # Retention (retention.py): the age is computed at scrape time from the cached
        # oldest creation time; the periods let an alert compare without repeating them.
        self.oldest_record_age = Gauge(
            "medgo_feedback_oldest_record_age_seconds",
            "age of the oldest interaction kept (0 when none); the daily purge keeps it "
            "below the retention period",
            registry=registry,
        )
        self.oldest_record_age.set_function(oldest.age_seconds)
        self.retention_period = Gauge(
            "medgo_feedback_retention_period_seconds",
            "configured retention, by data (records: interactions and ratings; "
            "export_copies: the loop's exports on the model volume)",
            ["data"], registry=registry,
        )
        self.retention_period.labels(data="records").set(settings.retention_days * _DAY_S)
        self.retention_period.labels(data="export_copies").set(
            settings.export_copy_retention_days * _DAY_S
        )
