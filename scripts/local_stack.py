"""Run the whole MedGo stack on this machine, without containers (local mode).

    scripts/up.sh                # what README's first command runs
    scripts/up.sh --skip-build   # fail instead of building medgo-tiny when it is missing

It builds medgo-tiny if needed, creates local secrets (service tokens, a demo
clinician key and an ops key) under var/secrets, starts feedback → inference →
trainer → gateway, waits until each answers its readiness probe, prints where to send
a chat request, and on Ctrl-C stops every process group it started (no orphans).

Each service reads its own MEDGO_* settings from the environment; this script only
sets the ones that wire the services together. Logs go to var/logs/<service>.log.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from medgo_common.secret_files import write_private_file
from medgo_common.supervise import ServerStartError, launched_process, wait_http_ok

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin"


@dataclass
class Service:
    name: str
    argv: list[str]
    port: int
    ready_path: str
    ready_timeout_s: float
    env: dict[str, str] = field(default_factory=dict)


class StartupError(Exception):
    """A condition the operator must fix; printed as one line, no traceback."""


def port_from_env(var: str, default: int) -> int:
    raw = os.environ.get(var, str(default))
    if not raw.isdigit():
        raise StartupError(f"{var}={raw!r} is not a port number")
    return int(raw)


def check_port_free(name: str, port: int, env_var: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        if sock.connect_ex(("127.0.0.1", port)) == 0:
            raise StartupError(
                f"port {port} for {name} is already in use; stop what listens there "
                f"(`ss -ltnp 'sport = :{port}'`) or set {env_var} to another port"
            )


def ensure_secrets(secret_dir: Path) -> dict[str, str]:
    """Local-mode secrets, created once. Production injects them from Secrets instead."""
    secret_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    tokens_file = secret_dir / "service-tokens.json"
    tokens = json.loads(tokens_file.read_text()) if tokens_file.exists() else {}
    # One token per caller: the trainer's job API admits ops only (its scopes), never
    # the gateway's token; a file from before the ops token existed gains it here.
    if set(tokens) != {"gateway", "trainer", "ops"}:
        tokens = {name: tokens.get(name) or secrets.token_urlsafe(32)
                  for name in ("gateway", "trainer", "ops")}
        write_private_file(tokens_file, json.dumps(tokens))

    keys_file = secret_dir / "api-keys.json"
    demo_file = secret_dir / "demo-keys.json"
    if not keys_file.exists() or not demo_file.exists():
        keys_file.unlink(missing_ok=True)
        demo = {}
        for name, role, dept in (
            ("demo-clinician", "clinician", "internal-medicine"),
            ("demo-ops", "ops", None),
        ):
            argv = [str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys_file),
                    "--name", name, "--role", role]
            if dept:
                argv += ["--department", dept]
            out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
            demo[role] = out.strip().splitlines()[-1].strip()
        write_private_file(demo_file, json.dumps(demo))
    return {
        "gateway_token": tokens["gateway"],
        "trainer_token": tokens["trainer"],
        "ops_token": tokens["ops"],
        "keys_file": str(keys_file),
        **{f"{k}_key": v for k, v in json.loads(demo_file.read_text()).items()},
    }


def build_services(var_dir: Path, sec: dict[str, str]) -> list[Service]:
    ports = {
        "gateway": port_from_env("MEDGO_GATEWAY_PORT", 8000),
        "inference": port_from_env("MEDGO_INFERENCE_PORT", 8001),
        "feedback": port_from_env("MEDGO_FEEDBACK_PORT", 8002),
        "trainer": port_from_env("MEDGO_TRAINER_PORT", 8003),
    }
    for name, port in ports.items():
        check_port_free(name, port, f"MEDGO_{name.upper()}_PORT")
    feedback_url = f"http://127.0.0.1:{ports['feedback']}"
    return [
        Service("feedback", [str(BIN / "medgo-feedback")], ports["feedback"], "/readyz", 120, {
            "MEDGO_FEEDBACK_SERVICE_TOKENS":
                f"gateway={sec['gateway_token']},trainer={sec['trainer_token']}",
        }),
        Service("inference", [str(BIN / "medgo-inference")], ports["inference"],
                "/v1/models", 900, {}),
        Service("trainer", [str(BIN / "medgo-trainer-api")], ports["trainer"], "/readyz", 120, {
            "MEDGO_TRAINER_FEEDBACK_URL": feedback_url,
            "MEDGO_TRAINER_FEEDBACK_TOKEN": sec["trainer_token"],
            "MEDGO_TRAINER_SERVICE_TOKENS": f"ops={sec['ops_token']}",
        }),
        Service("gateway", [str(BIN / "medgo-gateway")], ports["gateway"], "/readyz", 120, {
            "MEDGO_GATEWAY_INFERENCE_URL": f"http://127.0.0.1:{ports['inference']}",
            "MEDGO_GATEWAY_FEEDBACK_URL": feedback_url,
            "MEDGO_GATEWAY_FEEDBACK_TOKEN": sec["gateway_token"],
            "MEDGO_GATEWAY_API_KEYS_FILE": sec["keys_file"],
            # The manifest inference follows: `promote` reaches both without a restart.
            "MEDGO_GATEWAY_SERVING_MANIFEST": os.environ.get(
                "MEDGO_INFERENCE_MANIFEST", str(var_dir / "models" / "serving.json")),
        }),
    ]


def banner(port: int, sec: dict[str, str]) -> str:
    return f"""
MedGo is up (local mode, medgo-tiny on vLLM).

  Chat page: http://127.0.0.1:{port}/  (sign in with the demo clinician key below)

  Or through the API:

  curl -s http://127.0.0.1:{port}/v1/chat/completions \\
    -H 'Authorization: Bearer {sec['clinician_key']}' -H 'Content-Type: application/json' \\
    -d '{{"model": "medgo", "max_tokens": 64,
         "messages": [{{"role": "user", "content": "高血压患者日常饮食要注意什么？"}}]}}'

  demo clinician key: {sec['clinician_key']}
  demo ops key:       {sec['ops_key']}
  (stored in var/secrets/demo-keys.json; the trainer job API's ops token is "ops" in
  var/secrets/service-tokens.json; logs in var/logs/)

Press Ctrl-C to stop everything.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-build", action="store_true",
                        help="do not build medgo-tiny; fail if it is missing")
    args = parser.parse_args(argv)

    var_dir = ROOT / "var"  # where every service's settings default their state to
    try:
        with contextlib.ExitStack() as stack:  # stops every started service, newest first
            sec = prepare(var_dir, skip_build=args.skip_build)
            services = build_services(var_dir, sec)
            procs = {svc.name: stack.enter_context(start(svc, var_dir / "logs"))
                     for svc in services}
            print(banner(services[-1].port, sec), flush=True)
            signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
            while True:
                for name, proc in procs.items():
                    if proc.poll() is not None:
                        raise StartupError(f"{name} stopped (exit {proc.returncode}); "
                                           f"see var/logs/{name}.log")
                time.sleep(1)
    except KeyboardInterrupt:
        print("\n==> stopped MedGo", flush=True)
        return 0
    except (StartupError, ServerStartError) as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1


def prepare(var_dir: Path, *, skip_build: bool) -> dict[str, str]:
    """Check the data and the install, build medgo-tiny unless told not to, make secrets."""
    data_dir = Path(os.environ.get("MEDGO_TRAINER_DATA_DIR", ROOT.parent / "shared" / "data"))
    if not (data_dir / "corpus").is_dir():
        raise StartupError(f"data folder {data_dir} not found; put the shared data there "
                           "or set MEDGO_TRAINER_DATA_DIR")
    if not (BIN / "medgo-gateway").exists():
        raise StartupError("the MedGo packages are not installed; run scripts/up.sh, "
                           "which installs them into .venv")
    manifest = var_dir / "models" / "serving.json"
    if skip_build:
        if not manifest.exists():
            raise StartupError(f"no model to serve ({manifest} missing); "
                               "run without --skip-build to build medgo-tiny")
    elif subprocess.run([str(BIN / "medgo-train"), "build-tiny"]).returncode != 0:
        raise StartupError("medgo-tiny could not be built (see the message above)")
    return ensure_secrets(var_dir / "secrets")


@contextlib.contextmanager
def start(svc: Service, log_dir: Path) -> Iterator[subprocess.Popen]:
    """One service through the shared supervisor: started, readiness-gated, and its
    process group stopped when the stack unwinds (Ctrl-C, SIGTERM or an error)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"{svc.name}.log"
    print(f"==> starting {svc.name} on :{svc.port} (log: {log_file})", flush=True)
    url = f"http://127.0.0.1:{svc.port}{svc.ready_path}"
    with launched_process(svc.argv, {**os.environ, **svc.env}, log_file,
                          lambda alive: wait_http_ok(url, svc.ready_timeout_s, alive),
                          cwd=ROOT) as proc:
        print(f"    {svc.name} ready", flush=True)
        yield proc
        print(f"==> stopping {svc.name}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
