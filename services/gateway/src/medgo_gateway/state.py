"""The objects one gateway app holds, built once in `create_app` (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass

from opentelemetry.trace import Tracer

from medgo_gateway.deid import Deidentifier
from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.admission import Admission
from medgo_gateway.policy.auth import KeyStore
from medgo_gateway.policy.ratelimit import Quotas
from medgo_gateway.policy.revocation import SessionRevocations
from medgo_gateway.policy.safety import SafetyPolicy
from medgo_gateway.policy.session import SessionSigner
from medgo_gateway.recorder import Recorder
from medgo_gateway.settings import GatewaySettings
from medgo_gateway.upstream import Upstream


@dataclass
class GatewayState:
    settings: GatewaySettings
    metrics: GatewayMetrics
    keys: KeyStore
    sessions: SessionSigner
    revocations: SessionRevocations  # ended sessions, in the store the quotas use
    quotas: Quotas
    admission: Admission
    safety: SafetyPolicy
    deid: Deidentifier
    upstream: Upstream
    recorder: Recorder
    tracer: Tracer  # a no-op tracer when tracing is off
