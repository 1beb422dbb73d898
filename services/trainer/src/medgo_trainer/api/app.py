"""`create_app(settings)`: the job API's one factory (template layout)."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from medgo_common.errors import install_error_handlers
from medgo_common.observability import RequestIdMiddleware, health_router
from prometheus_client import CollectorRegistry, Counter, Gauge

from medgo_trainer.api.policy import JobPolicy
from medgo_trainer.api.routes import jobs
from medgo_trainer.api.runner import JobRunner
from medgo_trainer.api.store import JobStore
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop.retention import checkpoints_dir, oldest_export_copy

JOBS_DB = "jobs.sqlite3"


def create_app(settings: TrainerSettings) -> FastAPI:
    store = JobStore(settings.jobs_dir / JOBS_DB)
    registry = CollectorRegistry()
    submitted = Counter("medgo_trainer_jobs_submitted_total", "Training jobs started.",
                        ["stage"], registry=registry)
    _export_copy_gauge(settings, registry)
    runner = JobRunner(store, settings.jobs_dir, settings.max_running_jobs, submitted,
                       JobPolicy.from_settings(settings))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        runner.reconcile()  # jobs recorded as running before a restart
        yield

    async def readiness() -> str | None:
        try:
            store.running()
        except Exception as exc:  # any DB failure means "not ready", reported by type
            return f"job database unavailable ({type(exc).__name__})"
        return None

    app = FastAPI(title="MedGo trainer jobs", lifespan=lifespan)
    app.state.settings = settings
    app.state.runner = runner
    app.add_middleware(RequestIdMiddleware)
    install_error_handlers(app, validation_status=422)
    app.include_router(health_router(registry, readiness))
    app.include_router(jobs.router)
    return app


def _export_copy_gauge(settings: TrainerSettings, registry: CollectorRegistry) -> None:
    """Age of the oldest loop export left on the model volume, read at scrape time: one
    directory listing and one stat per checkpoint (alert MedgoRetentionOverdue)."""
    root = checkpoints_dir(settings)

    def age_seconds() -> float:
        try:
            written = oldest_export_copy(root)
        except OSError:  # an unreadable volume must not take /metrics down with it
            return math.nan
        return 0.0 if written is None else max(0.0, time.time() - written.timestamp())

    Gauge("medgo_trainer_oldest_export_copy_age_seconds",
          "age of the oldest feedback export the loop left on the model volume "
          "(checkpoints/<id>/dpo.jsonl; 0 when none); `medgo-train purge` removes them",
          registry=registry).set_function(age_seconds)
