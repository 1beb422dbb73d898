"""The gateway's Prometheus metrics, on a registry owned by one app instance.

Requests are counted by `edge.Edge` from the status line and the `x-medgo-checkpoint`
header of each response (never a body, so no text reaches a label). Label values are
bounded: routes are the matched route templates (unmatched paths count as "other"),
checkpoints are adapter names.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_UNTRACKED = {"/metrics", "/healthz", "/readyz"}


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "medgo_gateway_requests_total", "HTTP requests answered",
            ["route", "status", "checkpoint"], registry=registry,
        )
        self.latency = Histogram(
            "medgo_gateway_request_seconds", "time to the end of the response",
            ["route", "checkpoint"], buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.ttft = Histogram(
            "medgo_gateway_time_to_first_token_seconds", "time to the first streamed token",
            ["checkpoint"], buckets=_LATENCY_BUCKETS, registry=registry,
        )
        self.tokens = Counter(
            "medgo_gateway_tokens_total", "tokens processed, by kind (prompt/completion)",
            ["checkpoint", "kind"], registry=registry,
        )
        self.in_flight = Gauge(
            "medgo_gateway_in_flight", "requests in flight to inference", registry=registry
        )
        self.queued = Gauge(
            "medgo_gateway_queued", "requests waiting for an inference slot", registry=registry
        )
        self.rejections = Counter(
            "medgo_gateway_rejections_total", "requests refused, by reason",
            ["reason"], registry=registry,
        )
        self.refusals = Counter(
            "medgo_gateway_safety_refusals_total", "prompts refused by the safety policy",
            ["category"], registry=registry,
        )
        self.redactions = Counter(
            "medgo_gateway_redactions_total", "PHI spans redacted, by type",
            ["type"], registry=registry,
        )
        self.redaction_failures = Counter(
            "medgo_gateway_redaction_failures_total",
            "texts dropped because the redactor failed (fail closed)", registry=registry,
        )
        self.record_failures = Counter(
            "medgo_gateway_record_failures_total",
            "interaction records lost because the spool could not be written", registry=registry,
        )
        self.spool_depth = Gauge(
            "medgo_gateway_spool_depth", "records and ratings waiting for the feedback service",
            registry=registry,
        )
        self.spool_bytes = Gauge(
            "medgo_gateway_spool_bytes", "payload bytes held by the spool (pending and refused)",
            registry=registry,
        )
        self.spool_max_bytes = Gauge(
            "medgo_gateway_spool_max_bytes", "the spool's bound (MEDGO_GATEWAY_SPOOL_MAX_BYTES)",
            registry=registry,
        )
        self.spool_oldest_age = Gauge(
            "medgo_gateway_spool_oldest_age_seconds",
            "age of the oldest item waiting for the feedback service (0 when none)",
            registry=registry,
        )
        self.spool_full = Counter(
            "medgo_gateway_spool_full_total",
            "items not stored because the spool was full (records lost, ratings refused 503)",
            ["kind"], registry=registry,
        )
        self.rating_deferrals = Counter(
            "medgo_gateway_rating_deferrals_total",
            "ratings held back because feedback does not know their interaction yet "
            "(its record still in some replica's spool)", registry=registry,
        )
        self.spool_dead = Counter(
            "medgo_gateway_spool_rejected_total",
            "spooled items the feedback service refused as invalid (kept, not retried)",
            ["kind"], registry=registry,
        )
        self.delivered = Counter(
            "medgo_gateway_delivered_total", "items delivered to the feedback service",
            ["kind"], registry=registry,
        )

        self.quota_store_shared = Gauge(
            "medgo_gateway_quota_store_shared",
            "1 while quotas are counted in Redis across replicas, 0 when per replica",
            registry=registry,
        )
        self.quota_store_errors = Counter(
            "medgo_gateway_quota_store_errors_total",
            "Redis (quota store) failures; quotas fall back to per replica, sessions are "
            "refused", registry=registry,
        )
        self.session_revocations = Counter(
            "medgo_gateway_session_revocations_total",
            "sessions ended before their expiry, by reason (sign_out, key_removed, ops)",
            ["reason"], registry=registry,
        )

    def reject(self, reason: str) -> None:
        self.rejections.labels(reason=reason).inc()

    def answered(self, scope, status: str, checkpoint: str, seconds: float) -> None:
        """Count and time one answer (called by `edge.Edge` once it is sent)."""
        if scope["path"] in _UNTRACKED:
            return
        route = scope.get("route")
        path = getattr(route, "path", None) or "other"
        self.requests.labels(path, status, checkpoint).inc()
        self.latency.labels(path, checkpoint).observe(seconds)
