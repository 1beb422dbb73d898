"""A throwaway PostgreSQL server for the tests and the benchmark — never production.

Starts the machine's PostgreSQL binaries (`pg_config --bindir`, else
/usr/lib/postgresql/15/bin) on a private data directory and a free port, listening on
127.0.0.1 only, with trust authentication. PostgreSQL refuses to run as root, so when
we are root the data directory is handed to the `postgres` user and the server runs
as that user (`runuser`).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medgo_common.supervise import free_port

DEFAULT_BINDIR = Path("/usr/lib/postgresql/15/bin")


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl live, or None when PostgreSQL is not installed."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidate = Path(found.stdout.strip())
        if found.returncode == 0 and (candidate / "initdb").exists():
            return candidate
    return DEFAULT_BINDIR if (DEFAULT_BINDIR / "initdb").exists() else None


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@contextmanager
def throwaway_postgres(
    directory: Path, *, durable: bool = True, bindir: Path | None = None
) -> Iterator[str]:
    """Run a server under `directory`; yields the admin URL of its `postgres` database.

    `durable=False` turns fsync off: fine for tests (the server itself is never
    crashed; the crash test kills our service), wrong for benchmarks.
    """
    bindir = bindir or find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL binaries not found (pg_config, initdb)")
    data = directory / "pgdata"
    data.mkdir(parents=True)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (directory, data):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
        check=True,
        capture_output=True,
    )
    port = free_port()
    options = f"-p {port} -k {data} -c listen_addresses=127.0.0.1 -c max_connections=200"
    if not durable:
        options += " -c fsync=off -c full_page_writes=off"
    pg_ctl = str(bindir / "pg_ctl")
    subprocess.run(
        _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(data / "log"), "-w",
                      "start"]),
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
