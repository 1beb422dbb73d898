"""Every knob of the feedback store, read from `MEDGO_FEEDBACK_*` environment variables.

This is the only module that reads the environment: `main` (or the admin CLI) builds
one `FeedbackSettings` and passes it down, so tests build differently-configured apps
side by side. The database URL is normalised to the psycopg 3 driver, so operators can
paste the `postgresql://` URL their database hands them.
"""

from __future__ import annotations

from typing import Annotated

from medgo_common.paths import default_var_dir
from medgo_common.service_auth import parse_service_tokens, scopes_validator
from medgo_common.startup import ServerSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from medgo_feedback.scopes import DEFAULT_SCOPES, KNOWN_SCOPES


def _default_database_url() -> str:
    return f"sqlite:///{default_var_dir() / 'feedback.db'}"


class FeedbackSettings(ServerSettings):
    """Feedback service configuration; field descriptions double as the docs' table."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_FEEDBACK_", extra="ignore")

    # -- serving
    port: int = Field(8002, ge=0, le=65535, description="port to listen on")
    workers: int = Field(
        1, ge=1, description="uvicorn worker processes; more than 1 needs PostgreSQL"
    )

    # -- storage
    database_url: str = Field(
        default_factory=_default_database_url,
        description="SQLAlchemy URL: sqlite:///path (embedded) or postgresql://... (prod)",
    )
    sqlite_busy_timeout_ms: int = Field(
        5000, ge=0, description="how long a SQLite writer waits for the lock before 503"
    )
    pool_size: int = Field(20, ge=1, description="pooled connections (PostgreSQL)")
    pool_timeout_s: float = Field(10.0, gt=0, description="wait for a pooled connection")
    connect_timeout_s: int = Field(5, ge=1, description="PostgreSQL connect timeout")
    export_batch_rows: int = Field(
        2000, ge=1, description="rows fetched per round trip while streaming an export"
    )

    # -- security and limits
    service_tokens: Annotated[dict[str, SecretStr], NoDecode] = Field(
        default_factory=dict,
        description="callers allowed in, as `name=token,...` (e.g. gateway=abc,trainer=def)",
    )
    service_scopes: dict[str, tuple[str, ...]] = Field(
        default_factory=lambda: dict(DEFAULT_SCOPES),
        description="what each caller may do, as JSON {name: [scope, ...]} (scopes.py, "
        "`*` = all; docs/feedback.md, Scopes); a caller not listed gets 403 everywhere",
    )
    max_body_bytes: int = Field(
        4 * 1024 * 1024, ge=1024, description="larger request bodies are refused with 413"
    )
    max_batch_records: int = Field(
        500, ge=1, description="most interaction records in one POST /v1/interactions"
    )

    # -- online canary gate (online_gate.py; docs/feedback.md, "Online gate")
    gate_margin: float = Field(
        0.05, ge=0.0, le=1.0,
        description="non-inferiority margin: the canary's acceptance may be at most this "
        "much below stable's (lower bound of the Newcombe interval above −margin)",
    )
    gate_min_ratings: int = Field(
        200, ge=1, description="ratings each checkpoint needs before the gate gives a verdict"
    )
    gate_confidence: float = Field(
        0.95, gt=0.5, lt=1.0, description="two-sided confidence of the gate's intervals"
    )

    # -- retention (retention.py; docs/feedback.md, "Retention")
    retention_days: int = Field(
        365, ge=1,
        description="interactions and their ratings are purged this many days after the "
        "interaction (`medgo-train purge`, the daily CronJob `retention`)",
    )
    export_copy_retention_days: int = Field(
        30, ge=7,
        description="exports the training loop copied onto the model volume "
        "(checkpoints/<id>/dpo.jsonl) are removed this many days after they were "
        "written; at least 7 (a running loop keeps its export), at most retention_days",
    )
    purge_batch_rows: int = Field(
        1000, ge=1, le=10_000,
        description="interactions one purge transaction deletes (short locks: ingest "
        "goes on while a large backlog is purged)",
    )
    retention_refresh_s: float = Field(
        60.0, gt=0,
        description="how often the service re-reads its oldest interaction for the "
        "gauge medgo_feedback_oldest_record_age_seconds",
    )

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, value: str) -> str:
        """Route PostgreSQL through psycopg 3, whatever scheme the operator pasted."""
        for prefix in ("postgres://", "postgresql://"):
            if value.startswith(prefix):
                return "postgresql+psycopg://" + value[len(prefix) :]
        return value

    _parse_tokens = field_validator("service_tokens", mode="before")(parse_service_tokens)
    _known_scopes = field_validator("service_scopes")(scopes_validator(KNOWN_SCOPES))

    @model_validator(mode="after")
    def _copies_never_outlive_records(self) -> FeedbackSettings:
        """A copy of a conversation may not be kept longer than the conversation."""
        if self.export_copy_retention_days > self.retention_days:
            raise ValueError(
                f"export_copy_retention_days ({self.export_copy_retention_days}) must not "
                f"exceed retention_days ({self.retention_days})"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
