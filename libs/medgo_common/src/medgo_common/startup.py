"""Start-up checks every MedGo server shares: settings and the listening socket.

An operator who starts a service with a bad setting or a taken port should read one
line that says what to fix, not a traceback. Servers raise `StartupError` for such
conditions and `main()` turns it into that line and exit status 2 (`exit_for`).
"""

from __future__ import annotations

import socket
import sys
from typing import NoReturn, TypeVar

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class ServerSettings(BaseSettings):
    """The fields every MedGo HTTP server has; a service's settings class subclasses it
    and redeclares `port` with its own default (gateway 8000, feedback 8002)."""

    host: str = Field("127.0.0.1", description="interface to listen on")
    port: int = Field(0, ge=0, le=65535, description="port to listen on")
    log_level: str = Field("INFO", description="log level of the JSON logs")


class StartupError(Exception):
    """A condition the operator must fix; the message is the whole explanation."""


def load_settings(cls: type[S]) -> S:
    """Build the settings from the environment; a bad value names its variable."""
    try:
        return cls()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first.get("loc", ()))
        prefix = str(cls.model_config.get("env_prefix", ""))
        raise StartupError(f"invalid setting {prefix}{field.upper()}: {first['msg']}") from None


def bind_socket(host: str, port: int, *, port_setting: str) -> socket.socket:
    """Bind before serving, so a taken port is reported clearly (and without a race)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(
            f"cannot listen on {host}:{port} ({exc.strerror}); stop what uses it "
            f"or set {port_setting}"
        ) from None
    return sock


def exit_for(program: str, exc: StartupError) -> NoReturn:
    sys.stderr.write(f"{program}: {exc}\n")
    raise SystemExit(2)
