"""Every knob of the gateway, read from `MEDGO_GATEWAY_*` environment variables.

This is the only module that reads the environment: `main` builds one
`GatewaySettings` and `create_app` passes it down, so tests build as many
differently-configured apps as they like without sharing state.
"""

from __future__ import annotations

from pathlib import Path

from medgo_common.paths import default_var_dir
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_state_dir() -> Path:
    return default_var_dir() / "gateway"


class GatewaySettings(BaseSettings):
    """Gateway configuration; field descriptions double as the docs' settings table."""

    model_config = SettingsConfigDict(env_prefix="MEDGO_GATEWAY_", extra="ignore")

    # -- serving
    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(8000, ge=0, le=65535, description="port to listen on")
    log_level: str = Field("INFO", description="log level of the JSON logs")

    # -- upstreams
    inference_url: str = Field(
        "http://127.0.0.1:8001", description="stable inference backend (vLLM OpenAI server)"
    )
    canary_url: str | None = Field(None, description="optional canary inference backend")
    canary_weight: float = Field(
        0.0, ge=0.0, le=1.0, description="share of conversations routed to the canary"
    )
    model_adapter: str | None = Field(
        None,
        description="adapter the public name `medgo` maps to; default: the first adapter "
        "the backend lists (the manifest's default), else the base model",
    )
    models_cache_s: float = Field(
        10.0, gt=0, description="how long a backend's /v1/models answer is reused"
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

    @model_validator(mode="after")
    def _check(self) -> GatewaySettings:
        if self.default_max_tokens > self.max_tokens:
            raise ValueError("default_max_tokens must not exceed max_tokens")
        if self.canary_weight > 0 and not self.canary_url:
            raise ValueError("canary_weight > 0 needs MEDGO_GATEWAY_CANARY_URL")
        return self
