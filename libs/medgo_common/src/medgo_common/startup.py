"""Start-up checks every MedGo server shares: settings and the listening socket.

An operator who starts a service with a bad setting or a taken port should read one
line that says what to fix, not a traceback. Servers raise `StartupError` for such
conditions and `main()` turns it into that line and exit status 2 (`exit_for`).

Secrets (`refuse_weak_secrets`): outside local mode a service refuses to start on a
placeholder (`REPLACE_ME`, ...), a secret shorter than 32 bytes, or one of the
development secrets committed in this repository, so a copied example or a local
overlay cannot reach production. Local mode is each service's explicit
`MEDGO_<SVC>_LOCAL_MODE=true` (`LocalModeSettings`, which every settings class
inherits), set by the tests and the local-cpu overlay; it is off by default.
Each server names its secret *fields* once (`LocalModeSettings.refuse_weak_secrets`),
so gateway, feedback, trainer and inference share one rule and one message.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Mapping
from typing import NoReturn, TypeVar

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


class LocalModeSettings(BaseSettings):
    """The local-mode switch every MedGo service has, and the weak-secret check it
    relaxes (the same rule for every service, see the module docstring)."""

    local_mode: bool = Field(
        False, description="development machine: accept short, placeholder or committed "
        "development secrets (refused at start-up otherwise)",
    )

    def refuse_weak_secrets(self, *fields: str) -> None:
        """`StartupError` unless every secret held by `fields` is strong (or local mode).

        A field may hold a secret (`SecretStr` or `str`), nothing (unset: not checked),
        or a `name → secret` mapping (service tokens, each checked and named)."""
        prefix = str(self.model_config.get("env_prefix", ""))
        secrets: dict[str, str] = {}
        for name in fields:
            variable = f"{prefix}{name.upper()}"
            value = getattr(self, name)
            items = value.items() if isinstance(value, Mapping) else [(None, value)]
            for caller, secret in items:
                if isinstance(secret, SecretStr):
                    secret = secret.get_secret_value()
                if secret:
                    secrets[f"{variable} ({caller})" if caller else variable] = secret
        refuse_weak_secrets(secrets, local_mode=self.local_mode,
                            local_mode_setting=f"{prefix}LOCAL_MODE")


class ServerSettings(LocalModeSettings):
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


MIN_SECRET_BYTES = 32
PLACEHOLDER_MARKERS = ("replace_me", "replace-me", "changeme", "change_me", "change-me",
                       "placeholder", "example", "<", ">")
# The development secrets committed under deploy/k8s/overlays/local-cpu (the compose
# secrets are random per machine); tests/deploy keeps this list in step with the files.
KNOWN_DEV_SECRETS = frozenset({
    "local-dev-gateway-token", "local-dev-trainer-token", "local-dev-ops-token",
    "local-dev-session-secret", "local-dev-inference-key",
})


def weak_secret_reason(secret: str) -> str | None:
    """Why `secret` must not guard a production service, or None when it may."""
    lowered = secret.lower()
    if any(marker in lowered for marker in PLACEHOLDER_MARKERS):
        return "is a placeholder"
    if secret in KNOWN_DEV_SECRETS:
        return "is a development secret committed in the repository"
    if len(secret.encode()) < MIN_SECRET_BYTES:
        return f"is shorter than {MIN_SECRET_BYTES} bytes"
    return None


def refuse_weak_secrets(
    secrets: Mapping[str, str], *, local_mode: bool, local_mode_setting: str
) -> None:
    """`StartupError` naming the first weak secret's variable (never its value), unless
    in local mode. `secrets` maps a label such as `MEDGO_FEEDBACK_SERVICE_TOKENS
    (gateway)` to the secret's value."""
    if local_mode:
        return
    for label, secret in secrets.items():
        reason = weak_secret_reason(secret)
        if reason is not None:
            raise StartupError(
                f"{label} {reason}; set a random secret of at least {MIN_SECRET_BYTES} "
                f"bytes (e.g. `openssl rand -base64 32`), or {local_mode_setting}=true "
                "on a development machine"
            )


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
