"""`medgo-feedback`: migrate the database to head, then serve the API with uvicorn.

Start-up problems (bad settings, no service tokens, database unreachable, port in
use) end the process with one line on stderr saying what is wrong and how to fix it
— no traceback, which could also carry a database URL with its password.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from medgo_common.observability import configure_logging
from pydantic import ValidationError
from sqlalchemy import exc as sa_exc

from medgo_feedback.app import create_app
from medgo_feedback.db import safe_url, upgrade_to_head
from medgo_feedback.settings import FeedbackSettings


class StartupError(Exception):
    """A condition the operator must fix; the message is the whole explanation."""


def _settings() -> FeedbackSettings:
    try:
        settings = FeedbackSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise StartupError(
            f"invalid setting MEDGO_FEEDBACK_{field.upper()}: {first['msg']}"
        ) from None
    if not settings.service_tokens:
        raise StartupError(
            "no service tokens: set MEDGO_FEEDBACK_SERVICE_TOKENS=gateway=<token>,"
            "trainer=<token> (the feedback API admits no anonymous caller)"
        )
    return settings


def _migrate(settings: FeedbackSettings) -> None:
    try:
        upgrade_to_head(settings)
    except (sa_exc.OperationalError, sa_exc.InterfaceError) as exc:
        reason = str(exc.orig or exc).strip().splitlines()[0][:200]
        raise StartupError(
            f"cannot reach the feedback database {safe_url(settings)} ({reason}); start it "
            "or fix MEDGO_FEEDBACK_DATABASE_URL"
        ) from None


def _listen(settings: FeedbackSettings) -> socket.socket:
    """Bind before serving, so a taken port is reported clearly (and without a race)."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); stop what "
            "uses it or set MEDGO_FEEDBACK_PORT"
        ) from None
    return sock


def main() -> None:
    try:
        settings = _settings()
        configure_logging("feedback", settings.log_level)
        _migrate(settings)
        sock = _listen(settings)
    except StartupError as exc:
        sys.stderr.write(f"medgo-feedback: {exc}\n")
        raise SystemExit(2) from None
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
