"""`medgo-trainer-api`: serve the job API with uvicorn on settings.host:settings.port.

Start-up problems (bad settings, no service tokens, job directory not writable, port
in use) end the process with one line on stderr saying what to fix — no traceback.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from medgo_common.observability import configure_logging
from pydantic import ValidationError

from medgo_trainer.api.app import create_app
from medgo_trainer.settings import TrainerSettings


class StartupError(Exception):
    """A condition the operator must fix; the message is the whole explanation."""


def _settings() -> TrainerSettings:
    try:
        settings = TrainerSettings()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise StartupError(f"invalid setting MEDGO_TRAINER_{field.upper()}: {first['msg']}"
                           ) from None
    if not settings.service_tokens:
        raise StartupError("no service tokens: set MEDGO_TRAINER_SERVICE_TOKENS=ops=<token> "
                           "(the job API admits no anonymous caller)")
    try:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the job directory {settings.jobs_dir} "
                           f"({exc.strerror}); fix MEDGO_TRAINER_JOBS_DIR") from None
    return settings


def _listen(settings: TrainerSettings) -> socket.socket:
    """Bind before serving, so a taken port is reported clearly (and without a race)."""
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"cannot listen on {settings.host}:{settings.port} ({exc.strerror}); "
                           "stop what uses it or set MEDGO_TRAINER_PORT") from None
    return sock


def main() -> None:
    try:
        settings = _settings()
        sock = _listen(settings)
    except StartupError as exc:
        sys.stderr.write(f"medgo-trainer-api: {exc}\n")
        raise SystemExit(2) from None
    configure_logging("trainer")
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
