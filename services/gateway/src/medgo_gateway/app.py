"""`create_app(settings)`: the gateway's one app factory.

It wires middleware (the edge: request id, security headers, metrics → body limit),
the routers, the chat page and the error envelope; the lifespan opens the pooled HTTP
clients (aiohttp, to the inference replicas, see `upstream.py`, and to feedback) and
the durable spool, configures tracing (`app.state.tracing`, None when off), starts the
spool's delivery task, and on shutdown lets in-progress records reach the spool before
closing it, then flushes the batched spans.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import ExitStack, asynccontextmanager

import aiohttp
from fastapi import FastAPI
from medgo_common.bodylimit import BodyLimitMiddleware
from medgo_common.errors import install_error_handlers
from medgo_common.observability import health_router
from medgo_common.phi.guarded import awarm_up
from medgo_common.tracing import configure_tracing, tracer_for
from prometheus_client import CollectorRegistry

from medgo_gateway.deid import Deidentifier
from medgo_gateway.edge import Edge, metrics_server
from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.policy.admission import Admission
from medgo_gateway.policy.auth import KeyStore
from medgo_gateway.policy.ratelimit import Quotas
from medgo_gateway.policy.revocation import SessionRevocations
from medgo_gateway.policy.safety import SafetyPolicy
from medgo_gateway.policy.session import SessionSigner
from medgo_gateway.policy.shared_store import SharedStore
from medgo_gateway.recorder import Recorder
from medgo_gateway.replicas import ReplicaPool, ReplicaSource, split_urls
from medgo_gateway.routes import admin, chat, feedback, models, session
from medgo_gateway.routes.ui import mount_ui
from medgo_gateway.routing import ManifestRouting
from medgo_gateway.settings import GatewaySettings
from medgo_gateway.spool import Spool
from medgo_gateway.state import GatewayState
from medgo_gateway.upstream import CANARY, STABLE, Upstream, client_session


def build_upstream(settings: GatewaySettings, client: aiohttp.ClientSession) -> Upstream:
    """Replica pools (the stable one, and a base-model canary if configured) + routing."""
    key = settings.inference_api_key
    headers = {"Authorization": f"Bearer {key.get_secret_value()}"} if key else {}

    def pool(name: str, source: ReplicaSource) -> ReplicaPool:
        return ReplicaPool(name=name, source=source, client=client, headers=headers,
                           probe_timeout_s=settings.connect_timeout_s, eject_s=settings.eject_s)

    pools = {STABLE: pool(STABLE, ReplicaSource(split_urls(settings.inference_url),
                                                settings.inference_dns))}
    if settings.canary_url:
        pools[CANARY] = pool(CANARY, ReplicaSource(split_urls(settings.canary_url)))
    return Upstream(
        client=client,
        pools=pools,
        routing=ManifestRouting(settings.serving_manifest, settings.model_adapter),
        canary_weight=settings.canary_weight,
        refresh_s=settings.replica_refresh_s,
        manifest_poll_s=settings.manifest_poll_s,
    )


def create_app(settings: GatewaySettings) -> FastAPI:
    """Build the app; raises `KeysFileError` at once if the keys file is unusable."""
    metrics = GatewayMetrics(CollectorRegistry())
    keys = KeyStore(settings.api_keys_file)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        spool = Spool(settings.spool_path, max_bytes=settings.spool_max_bytes)
        await awarm_up()  # the redactor's name model, before the first request needs it
        edge = ExitStack()
        tracing = configure_tracing("medgo-gateway", settings.otlp_endpoint)
        app.state.tracing = tracing
        if tracing is not None:
            edge.callback(tracing.shutdown)  # flushes the spans still batched
        if settings.metrics_port is not None:
            edge.enter_context(metrics_server(settings.host, settings.metrics_port,
                                              metrics.registry))
        inference = client_session(max_connections=settings.max_connections,
                                   connect_timeout_s=settings.connect_timeout_s,
                                   read_timeout_s=settings.upstream_timeout_s)
        # FEEDBACK_TIMEOUT_S bounds the connect and each wait for bytes, as httpx's did.
        feedback_http = client_session(max_connections=settings.max_connections,
                                       connect_timeout_s=settings.feedback_timeout_s,
                                       read_timeout_s=settings.feedback_timeout_s)
        async with inference, feedback_http:
            upstream = build_upstream(settings, inference)
            await upstream.start()
            admission = Admission(
                max_in_flight=settings.max_in_flight,
                max_queue=settings.max_queue,
                queue_timeout_s=settings.queue_timeout_s,
                on_reject=metrics.reject,
            )
            recorder = Recorder(
                client=feedback_http,
                feedback_url=settings.feedback_url,
                token=settings.feedback_token.get_secret_value()
                if settings.feedback_token
                else None,
                spool=spool,
                metrics=metrics,
                retry_interval_s=settings.replay_interval_s,
                rating_retry_window_s=settings.rating_retry_window_s,
                drain_timeout_s=settings.drain_timeout_s,
                answers_pending=lambda: admission.in_flight > 0,
            )
            store = _shared_store(settings, metrics)
            quotas = Quotas(
                store, metrics, requests_per_minute=settings.requests_per_minute,
                tokens_per_minute=settings.tokens_per_minute,
                max_in_flight_per_key=settings.max_in_flight_per_key,
            )
            app.state.gateway = GatewayState(
                settings=settings,
                metrics=metrics,
                keys=keys,
                sessions=SessionSigner(
                    settings.session_secret.get_secret_value().encode("utf-8")
                    if settings.session_secret
                    else None,
                    settings.session_ttl_s,
                ),
                revocations=SessionRevocations(store, metrics, settings.session_ttl_s),
                quotas=quotas,
                admission=admission,
                safety=SafetyPolicy(),
                deid=Deidentifier(metrics, timeout=settings.redaction_timeout_s),
                upstream=upstream,
                recorder=recorder,
                tracer=tracer_for(tracing, "medgo.gateway"),
            )
            metrics.in_flight.set_function(lambda: admission.in_flight)
            metrics.queued.set_function(lambda: admission.waiting)
            await recorder.start()
            try:
                yield
            finally:
                await upstream.stop()
                await recorder.stop()
                spool.close()
                await quotas.close()
                edge.close()

    docs = settings.api_docs
    app = FastAPI(
        title="MedGo gateway",
        version="0.1.0",
        description="The hospital's OpenAI-compatible entry point to MedGo.",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    install_error_handlers(app, validation_status=400)

    async def readiness() -> str | None:
        state: GatewayState | None = getattr(app.state, "gateway", None)
        return "starting" if state is None else state.upstream.readiness()

    # The chat route first: the router tries the routes in order, and every chat paid
    # for each one tried before its own (API docs, health): ~5 % of the gateway's CPU
    # at 16 in flight (py-spy, bench/gateway.py --profile). Its path is exact, so
    # it shadows no other route.
    app.include_router(chat.router)
    app.router.routes.insert(0, app.router.routes.pop())
    app.include_router(
        health_router(metrics.registry, readiness, metrics=settings.metrics_port is None))
    for router in (models.router, feedback.router, admin.router, session.router):
        app.include_router(router)
    mount_ui(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       on_reject=metrics.reject)
    app.add_middleware(Edge, metrics=metrics, hsts=settings.tls_certfile is not None)
    return app


def _shared_store(settings: GatewaySettings, metrics: GatewayMetrics) -> SharedStore:
    """Redis (or memory) for the quotas and the session revocations alike."""
    return SharedStore(
        redis_url=settings.redis_url, metrics=metrics, timeout_s=settings.redis_timeout_s,
        retry_s=settings.redis_retry_s, fail_closed=settings.quota_fail_closed,
        slot_ttl_s=settings.in_flight_slot_ttl_s,
    )
