"""Every knob of the gateway, read from `MEDGO_GATEWAY_*` environment variables.

This is the only module that reads the environment: `main` builds one
`GatewaySettings` and `create_app` passes it down, so tests build as many
differently-configured apps as they like without sharing state.
"""

from __future__ import annotations

from pathlib import Path

from medgo_common.paths import default_var_dir
from medgo_common.startup import ServerSettings
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from medgo_gateway.replicas import split_urls


def _default_state_dir() -> Path:
    return default_var_dir() / "gateway"


class GatewaySettings(ServerSettings):
    """Gateway configuration; field descriptions double as the docs' settings table."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_GATEWAY_", extra="ignore")

    # -- serving
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")

    # -- upstreams: inference replicas, routing (see upstream.py, replicas.py, routing.py)
    inference_url: str = Field(
        "http://127.0.0.1:8001",
        description="inference replicas (vLLM OpenAI servers): one URL or a comma-separated "
        "list (local mode)",
    )
    inference_dns: str | None = Field(
        None,
        description="`host:port` of the inference headless Service; its DNS A records are "
        "the replicas (Kubernetes), re-resolved every replica_refresh_s; overrides "
        "inference_url",
    )
    inference_api_key: SecretStr | None = Field(
        None, description="bearer key inference (vLLM) requires; empty = none"
    )
    serving_manifest: Path | None = Field(
        None,
        description="serving manifest (stable adapter, canary adapter and weight), re-read "
        "on change; the same file inference follows (a ConfigMap in Kubernetes)",
    )
    manifest_poll_s: float = Field(1.0, gt=0, description="how often the manifest is re-read")
    replica_refresh_s: float = Field(
        2.0, gt=0, description="how often replicas are re-discovered and their /v1/models read"
    )
    eject_s: float = Field(
        5.0, gt=0, description="first back-off of a failing replica (doubles, at most 60 s)"
    )
    canary_url: str | None = Field(
        None,
        description="replicas of a base-model canary (a separate Deployment on a new base): "
        "one URL or a comma-separated list",
    )
    canary_weight: float = Field(
        0.0, ge=0.0, le=1.0,
        description="share of conversations routed to the base-model canary replicas",
    )
    model_adapter: str | None = Field(
        None,
        description="without a serving manifest: the adapter the public name `medgo` maps "
        "to; default: the first adapter a replica lists, else the base model",
    )
    connect_timeout_s: float = Field(
        3.0, gt=0, description="upstream connect timeout, and the whole /v1/models probe"
    )
    upstream_timeout_s: float = Field(
        120.0, gt=0, description="upstream read timeout (whole answer, or gap between chunks)"
    )
    max_connections: int = Field(256, ge=1, description="pooled connections to upstreams")

    # -- feedback service
    feedback_url: str = Field("http://127.0.0.1:8002", description="feedback service URL")
    feedback_token: SecretStr | None = Field(
        None, description="bearer token the gateway presents to the feedback service"
    )
    feedback_timeout_s: float = Field(5.0, gt=0, description="feedback request timeout")
    replay_interval_s: float = Field(
        2.0, gt=0, description="pause between delivery attempts while feedback is down"
    )
    spool_path: Path = Field(
        default_factory=lambda: _default_state_dir() / "spool.sqlite3",
        description="durable spool of records and ratings not yet delivered",
    )
    spool_max_bytes: int = Field(
        512 * 1024**2, ge=1024**2,
        description="bound of the spool's payload; beyond it records are dropped (counted) "
        "and ratings refused with 503; keep it under the spool volume's size",
    )
    rating_retry_window_s: float = Field(
        3600.0, gt=0,
        description="how long a rating whose interaction feedback does not know yet (still "
        "in some replica's spool) is retried, with back-off, before it is set aside",
    )
    drain_timeout_s: float = Field(
        15.0, ge=0,
        description="on shutdown, longest time spent delivering the spool to feedback "
        "(keep it inside the pod's grace period with the request drain)",
    )

    # -- authentication and quotas
    api_keys_file: Path = Field(
        default_factory=lambda: _default_state_dir() / "api_keys.json",
        description="JSON file of API key hashes (see `medgo-gateway keys add`)",
    )
    session_ttl_s: int = Field(
        8 * 3600, ge=60, le=7 * 24 * 3600,
        description="lifetime of a chat-page session (sign-in with a key), default one shift",
    )
    session_secret: SecretStr | None = Field(
        None,
        description="HMAC key signing chat-page sessions; set the same value on every "
        "replica (default: random per process, so sessions end on restart)",
    )
    requests_per_minute: int = Field(60, ge=1, description="default per-key request quota")
    tokens_per_minute: int = Field(60_000, ge=1, description="default per-key token quota")
    max_in_flight_per_key: int = Field(
        16, ge=1, description="requests one key may have in flight, across all replicas"
    )

    # -- shared state (quotas counted once across gateway replicas)
    redis_url: str = Field(
        "", description="Redis holding quota counters and session revocations, e.g. "
        "redis://redis:6379/0; empty = this process's memory (local mode, one replica)",
    )
    redis_timeout_s: float = Field(
        0.25, gt=0, description="Redis connect and command timeout; beyond it Redis is down"
    )
    redis_retry_s: float = Field(
        5.0, gt=0, description="after a Redis failure, count per replica this long, then retry"
    )
    quota_fail_closed: bool = Field(
        False, description="while Redis is down answer 503 instead of per-replica quotas"
    )
    in_flight_slot_ttl_s: float = Field(
        600.0, gt=0, description="an in-flight slot in Redis expires after this (crashed replica)"
    )

    # -- admission control
    max_in_flight: int = Field(32, ge=1, description="concurrent requests sent to inference")
    max_queue: int = Field(64, ge=0, description="requests allowed to wait for a slot")
    queue_timeout_s: float = Field(
        10.0, gt=0, description="longest wait for a slot before answering 503"
    )

    # -- request limits
    max_body_bytes: int = Field(1_000_000, ge=1024, description="largest request body")
    max_messages: int = Field(64, ge=1, description="most messages in one chat request")
    max_chars: int = Field(32_000, ge=1, description="most characters over all messages")
    max_tokens: int = Field(1024, ge=1, description="largest max_tokens a client may ask")
    default_max_tokens: int = Field(
        512, ge=1, description="max_tokens sent upstream when the client gives none"
    )

    passthrough_params: list[str] = Field(
        default_factory=list,
        description="vLLM request extras let through to the model (e.g. ignore_eos for a "
        "load benchmark); every other parameter outside the supported set gets 400",
    )

    # -- edge (docs/operations.md, "TLS at the edge")
    tls_certfile: Path | None = Field(
        None,
        description="PEM certificate chain: with tls_keyfile the API port speaks HTTPS and "
        "every answer carries HSTS",
    )
    tls_keyfile: Path | None = Field(None, description="PEM private key of tls_certfile")
    metrics_port: int | None = Field(
        None, ge=1, le=65535,
        description="serve /metrics on this plain-HTTP port instead of the API port, so a "
        "load balancer in front of the API never exposes it",
    )
    otlp_endpoint: str = Field(
        "",
        description="OpenTelemetry collector (OTLP/HTTP) base URL; spans go to "
        "`<url>/v1/traces`. Empty: tracing off",
    )
    api_docs: bool = Field(
        True,
        description="serve /docs and /openapi.json (Swagger UI loads from a CDN: turn off "
        "on an offline network)",
    )

    # -- privacy
    redact_prompts: bool = Field(
        False, description="also redact PHI from prompts before they reach the model"
    )
    redaction_timeout_s: float = Field(
        2.0, gt=0, le=30,
        description="longest wait for the redactor (queue included); past it, fail closed",
    )

    @field_validator("inference_url", "canary_url", "feedback_url")
    @classmethod
    def _strip_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @field_validator("inference_url", "canary_url")
    @classmethod
    def _url_list(cls, value: str | None) -> str | None:
        if value:
            split_urls(value)
        return value or None

    @field_validator("inference_dns")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value and not value.rpartition(":")[2].isdigit():
            raise ValueError("must be `host:port`, e.g. inference-headless:8001")
        return value or None

    @field_validator("inference_api_key", mode="before")
    @classmethod
    def _empty_key_is_none(cls, value: object) -> object:
        return value or None

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.default_max_tokens > self.max_tokens:
            raise ValueError("default_max_tokens must not exceed max_tokens")
        if self.canary_weight > 0 and not self.canary_url:
            raise ValueError("canary_weight > 0 needs MEDGO_GATEWAY_CANARY_URL")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise ValueError("set MEDGO_GATEWAY_TLS_CERTFILE and MEDGO_GATEWAY_TLS_KEYFILE "
                             "together")
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("MEDGO_GATEWAY_METRICS_PORT must differ from MEDGO_GATEWAY_PORT")
        return self
