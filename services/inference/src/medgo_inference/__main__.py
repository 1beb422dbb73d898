"""`medgo-inference`: check everything cheap, then become the vLLM OpenAI server.

    medgo-inference             # serve var/models/serving.json on :8001 and follow it
    medgo-inference --dry-run   # print the vLLM command and environment, start nothing
    medgo-inference --check     # exit 0 when the server on host:port is ready
    medgo-inference --status    # print the adapter sync state; exit 0 when it serves
                                # exactly the manifest (the rollout's wait condition)

Following the manifest, the launcher supervises vLLM and loads / unloads adapters at
run time (`supervisor.py`, `sync.py`); an explicit MEDGO_INFERENCE_BASE_MODEL execs
vLLM and serves a fixed set.

Every start-up failure an operator can fix (bad setting, port in use, vLLM missing,
missing or corrupt model directory) is one line on stderr and exit code 2, before
anything is started, so nothing is left running.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import logging
import os
import shlex
import socket
import sys

import httpx
from medgo_common import startup
from medgo_common.observability import configure_logging
from medgo_common.readiness import check_ready
from pydantic import ValidationError

from medgo_inference.hardware import detect_hardware
from medgo_inference.launcher import build_argv, build_env, exec_vllm
from medgo_inference.modeldir import ModelDirError
from medgo_inference.resolve import PlanError, ServePlan, resolve_plan
from medgo_inference.settings import InferenceSettings
from medgo_inference.supervisor import Supervisor

logger = logging.getLogger("medgo.inference")
EXIT_STARTUP = 2
ENV_PREFIX = InferenceSettings.model_config["env_prefix"]


class StartupError(Exception):
    """Printed as one line; the process exits without a traceback."""


def load_settings() -> InferenceSettings:
    try:
        return InferenceSettings()
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ENV_PREFIX + "_".join(str(p) for p in err["loc"]).upper()
        raise StartupError(f"invalid setting {name}: {err['msg']}") from None


def check_secrets(settings: InferenceSettings) -> None:
    """vLLM's API key is the only credential between the gateway and the model: outside
    local mode a placeholder, short or committed development key stops the launch."""
    try:
        settings.refuse_weak_secrets("api_key")
    except startup.StartupError as exc:
        raise StartupError(str(exc)) from None


def check_port_free(host: str, port: int) -> None:
    """Bind the way uvicorn will (SO_REUSEADDR), so only a live listener makes it fail."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {host}:{port} ({exc.strerror}); stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'`) or set {ENV_PREFIX}PORT to a free port"
            ) from None


def check_vllm_installed() -> None:
    if importlib.util.find_spec("vllm") is None:
        raise StartupError("vLLM is not installed in this Python environment; run "
                           "scripts/bootstrap.sh (CPU) or see docs/production.md (CUDA)")


def plan_from(settings: InferenceSettings) -> ServePlan:
    try:
        return resolve_plan(settings, detect_hardware(probe_cuda=settings.device != "cpu"))
    except (PlanError, ModelDirError) as exc:
        raise StartupError(str(exc)) from None


def local_url(settings: InferenceSettings) -> str:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    return f"http://{host}:{settings.port}"


def sync_status(settings: InferenceSettings) -> int:
    """Print the launcher's /status; 0 when vLLM serves exactly the current manifest."""
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    try:
        status = httpx.get(f"http://{host}:{settings.status_port}/status", timeout=5).json()
    except (httpx.HTTPError, ValueError) as exc:
        sys.stdout.write(f"no status: the launcher does not answer ({type(exc).__name__})\n")
        return 1
    sys.stdout.write(json.dumps(status, ensure_ascii=False) + "\n")
    return 0 if status.get("in_sync") else 1


def run(args: argparse.Namespace) -> int:
    settings = load_settings()
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    if args.check:
        reason = check_ready(local_url(settings), settings.served_model_name, api_key=api_key)
        sys.stdout.write(f"not ready: {reason}\n" if reason else "ready\n")
        return 1 if reason else 0
    if args.status:
        return sync_status(settings)
    check_secrets(settings)
    plan = plan_from(settings)
    argv = build_argv(plan, settings)
    env = build_env(plan, settings, os.environ)
    if args.dry_run:
        added = {k: v for k, v in env.items() if os.environ.get(k) != v}
        sys.stdout.write(" ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(added.items())))
        sys.stdout.write(f" {shlex.join(argv)}\n")
        return 0
    check_port_free(settings.host, settings.port)
    check_vllm_installed()
    logger.info(
        "starting vLLM",
        extra={
            "checkpoint": plan.checkpoint_id,
            "base_model": str(plan.base_model),
            "adapters": [a.name for a in plan.adapters],
            "device": plan.device,
            "dtype": plan.dtype,
            "tensor_parallel_size": plan.tensor_parallel_size,
            "url": local_url(settings),
        },
    )
    if plan.watched_manifest is None:
        exec_vllm(argv, env)  # replaces this process; never returns
    supervisor = Supervisor(settings, plan, dict(os.environ), lambda: plan_from(settings),
                            local_url(settings))
    code = asyncio.run(supervisor.run())
    return 128 - code if code < 0 else code  # killed by a signal: the shell's convention


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="medgo-inference",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true",
                      help="probe the server at MEDGO_INFERENCE_HOST:PORT; exit 0 when ready")
    mode.add_argument("--status", action="store_true",
                      help="print the adapter sync state; exit 0 when it matches the manifest")
    mode.add_argument("--dry-run", action="store_true",
                      help="resolve the checkpoint, print the vLLM command, start nothing")
    args = parser.parse_args(argv)
    configure_logging("inference")
    try:
        code = run(args)
    except StartupError as exc:
        sys.stderr.write(f"medgo-inference: error: {exc}\n")
        code = EXIT_STARTUP
    sys.exit(code)


if __name__ == "__main__":
    main()
