"""`create_app(settings)`: the job API's one factory (template layout)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from medgo_common.errors import install_error_handlers
from medgo_common.observability import RequestIdMiddleware, health_router
from prometheus_client import CollectorRegistry, Counter

from medgo_trainer.api.policy import JobPolicy
from medgo_trainer.api.routes import jobs
from medgo_trainer.api.runner import JobRunner
from medgo_trainer.api.store import JobStore
from medgo_trainer.settings import TrainerSettings

JOBS_DB = "jobs.sqlite3"


def create_app(settings: TrainerSettings) -> FastAPI:
    store = JobStore(settings.jobs_dir / JOBS_DB)
    registry = CollectorRegistry()
    submitted = Counter("medgo_trainer_jobs_submitted_total", "Training jobs started.",
                        ["stage"], registry=registry)
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
