"""`medgo-gateway`: run the server (default, or `serve`), or manage API keys.

Examples:
    medgo-gateway                       # serve on MEDGO_GATEWAY_HOST:MEDGO_GATEWAY_PORT
    medgo-gateway keys add --file var/gateway/api_keys.json --name dr-demo --role clinician \\
        --department cardiology         # prints the new key once; only its hash is stored
    medgo-gateway keys list --file var/gateway/api_keys.json
    medgo-gateway keys remove --file var/gateway/api_keys.json dr-demo   # name or user id;
                                        # running gateways end its sessions on every replica

A bad start-up condition (port in use, unusable keys file or spool, a weak secret
outside local mode) is reported as one line on stderr with the fix, and a non-zero
exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
from pathlib import Path

from pydantic import ValidationError

from medgo_gateway.policy.auth import KeysFileError, Role, add_key, load_keys_file, remove_key

#: Longest wait for requests in progress after SIGTERM, before the spool drain
#: (`drain_timeout_s`) starts; deploy/k8s sizes the pods' grace period from both.
GRACEFUL_SHUTDOWN_S = 10


def _fail(message: str) -> int:
    print(f"medgo-gateway: {message}", file=sys.stderr)
    return 2


def _serve() -> int:
    import uvicorn
    from medgo_common.observability import configure_logging
    from medgo_common.startup import StartupError, bind_socket, load_settings

    from medgo_gateway.app import create_app
    from medgo_gateway.settings import GatewaySettings
    from medgo_gateway.spool import Spool

    try:
        settings = load_settings(GatewaySettings)
        # The API keys file holds only SHA-256 hashes of generated keys: nothing to judge.
        settings.refuse_weak_secrets("session_secret", "feedback_token", "inference_api_key")
        try:
            Spool(settings.spool_path).close()
        except (OSError, sqlite3.Error) as exc:
            raise StartupError(
                f"cannot open the spool {settings.spool_path}: {exc}; "
                "set MEDGO_GATEWAY_SPOOL_PATH to a writable file"
            ) from None
        try:
            app = create_app(settings)
        except KeysFileError as exc:
            raise StartupError(f"{exc} (or set MEDGO_GATEWAY_API_KEYS_FILE)") from None
        for path in (settings.tls_certfile, settings.tls_keyfile):
            if path is not None and not path.is_file():
                raise StartupError(f"TLS file {path} not found; set MEDGO_GATEWAY_TLS_CERTFILE "
                                   "and MEDGO_GATEWAY_TLS_KEYFILE to readable PEM files")
        sock = bind_socket(settings.host, settings.port, port_setting="MEDGO_GATEWAY_PORT")
    except StartupError as exc:
        return _fail(str(exc))
    configure_logging("gateway", settings.log_level)
    config = uvicorn.Config(
        app, log_config=None, timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        ssl_certfile=settings.tls_certfile, ssl_keyfile=settings.tls_keyfile,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _keys_add(args: argparse.Namespace) -> int:
    try:
        key, entry = add_key(
            args.file, name=args.name, role=Role(args.role), department=args.department,
            requests_per_minute=args.rpm, tokens_per_minute=args.tpm,
        )
    except (KeysFileError, ValidationError) as exc:
        return _fail(str(exc).splitlines()[0])
    print(key)
    print(f"(stored only its hash in {args.file}; user id {entry.id}; "
          "this key is not shown again)", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    try:
        keys = load_keys_file(args.file)
    except KeysFileError as exc:
        return _fail(str(exc))
    for k in keys.keys:
        print(f"{k.id}\t{k.name}\t{k.role.value}\t{k.department or '-'}")
    return 0


def _keys_remove(args: argparse.Namespace) -> int:
    try:
        entry = remove_key(args.file, args.key)
    except KeysFileError as exc:
        return _fail(str(exc))
    print(f"removed {entry.id}\t{entry.name}; gateways reading {args.file} end its sessions "
          "when they notice the change", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medgo-gateway", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the gateway server (the default)")
    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    add = keys.add_parser("add", help="create a key; prints it once, stores its hash")
    add.add_argument("--file", type=Path, required=True, help="the API keys JSON file")
    add.add_argument("--name", required=True, help="a label for the key (not recorded)")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--department", help="department recorded with interactions")
    add.add_argument("--rpm", type=int, help="requests per minute (default: settings)")
    add.add_argument("--tpm", type=int, help="tokens per minute (default: settings)")
    lst = keys.add_parser("list", help="list keys (ids, names, roles; never the keys)")
    lst.add_argument("--file", type=Path, required=True)
    rm = keys.add_parser("remove", help="delete a key; its sessions end on every replica")
    rm.add_argument("--file", type=Path, required=True)
    rm.add_argument("key", help="the key's name or user id (u_...)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "keys":
        commands = {"add": _keys_add, "list": _keys_list, "remove": _keys_remove}
        return commands[args.keys_command](args)
    return _serve()
