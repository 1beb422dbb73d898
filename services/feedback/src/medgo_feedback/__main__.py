"""`medgo-feedback`: migrate the database to head, then serve the API with uvicorn.

Start-up problems (bad settings, no service tokens, database unreachable, port in
use) end the process with one line on stderr saying what is wrong and how to fix it
— no traceback, which could also carry a database URL with its password.

With `MEDGO_FEEDBACK_WORKERS=N` (PostgreSQL only) uvicorn's supervisor runs N worker
processes on the one listening socket: a rating costs under a millisecond of CPU, so
throughput scales with cores, not with threads of one process. SQLite stays one
process, because its single writer lock would only make the workers queue.
"""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI
from medgo_common.observability import configure_logging
from medgo_common.startup import StartupError, bind_socket, exit_for, load_settings
from sqlalchemy import exc as sa_exc
from uvicorn.supervisors import Multiprocess

from medgo_feedback.app import create_app
from medgo_feedback.db import describe_db_error, upgrade_to_head
from medgo_feedback.settings import FeedbackSettings


def _settings() -> FeedbackSettings:
    settings = load_settings(FeedbackSettings)
    if not settings.service_tokens:
        raise StartupError(
            "no service tokens: set MEDGO_FEEDBACK_SERVICE_TOKENS=gateway=<token>,"
            "trainer=<token> (the feedback API admits no anonymous caller)"
        )
    settings.refuse_weak_secrets("service_tokens")
    if settings.workers > 1 and settings.is_sqlite:
        raise StartupError(
            "MEDGO_FEEDBACK_WORKERS > 1 needs PostgreSQL (SQLite has one writer); set it "
            "to 1 or point MEDGO_FEEDBACK_DATABASE_URL at PostgreSQL"
        )
    return settings


def worker_app() -> FastAPI:
    """The app in a worker process: the parent validated the same environment."""
    settings = FeedbackSettings()
    configure_logging("feedback", settings.log_level)
    return create_app(settings)


def _migrate(settings: FeedbackSettings) -> None:
    try:
        upgrade_to_head(settings)
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        raise StartupError(
            f"cannot reach the feedback database {describe_db_error(settings, exc)}; start it "
            "or fix MEDGO_FEEDBACK_DATABASE_URL"
        ) from None


def main() -> None:
    try:
        settings = _settings()
        configure_logging("feedback", settings.log_level)
        _migrate(settings)
        sock = bind_socket(settings.host, settings.port, port_setting="MEDGO_FEEDBACK_PORT")
    except StartupError as exc:
        exit_for("medgo-feedback", exc)
    if settings.workers == 1:
        config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
        return
    config = uvicorn.Config(
        "medgo_feedback.__main__:worker_app",
        factory=True,
        workers=settings.workers,
        log_config=None,
        access_log=False,
    )
    Multiprocess(config, sockets=[sock]).run()


if __name__ == "__main__":
    main()
