"""`medgo-trainer-api`: serve the job API with uvicorn on settings.host:settings.port.

Start-up problems (bad settings, no or weak service tokens, job directory not
writable, port in use) end the process with one line on stderr saying what to fix — no traceback.
"""

from __future__ import annotations

import uvicorn
from medgo_common.observability import configure_logging
from medgo_common.startup import StartupError, bind_socket, exit_for, load_settings

from medgo_trainer.api.app import create_app
from medgo_trainer.settings import TrainerSettings


def _settings() -> TrainerSettings:
    settings = load_settings(TrainerSettings)
    if not settings.service_tokens:
        raise StartupError("no service tokens: set MEDGO_TRAINER_SERVICE_TOKENS=ops=<token> "
                           "(the job API admits no anonymous caller)")
    settings.refuse_weak_secrets("service_tokens", "feedback_token", "inference_api_key")
    try:
        settings.jobs_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(f"cannot create the job directory {settings.jobs_dir} "
                           f"({exc.strerror}); fix MEDGO_TRAINER_JOBS_DIR") from None
    return settings


def main() -> None:
    try:
        settings = _settings()
        sock = bind_socket(settings.host, settings.port, port_setting="MEDGO_TRAINER_PORT")
    except StartupError as exc:
        exit_for("medgo-trainer-api", exc)
    configure_logging("trainer")
    config = uvicorn.Config(create_app(settings), log_config=None, access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
