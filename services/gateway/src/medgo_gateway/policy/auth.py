"""API keys: a file of SHA-256 hashes with a role, department and quotas per key.

Only hashes are stored, so the keys file (a Kubernetes secret in production) never
holds a usable credential. Each key carries a random pseudonymous `id` that the
gateway records as the user / rater, so neither the key nor a person's name reaches
the feedback store. The file is re-read when its modification time changes, so
`medgo-gateway keys add` takes effect without a restart.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from enum import StrEnum
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

KEY_PREFIX = "mg-"


class Role(StrEnum):
    clinician = "clinician"
    api_client = "api-client"
    ops = "ops"


class ApiKey(BaseModel):
    """One key as stored: never the key itself, only its SHA-256."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^u_[0-9a-f]{16}$", description="pseudonymous user id")
    name: str = Field(min_length=1, max_length=128)
    role: Role
    department: str | None = Field(default=None, max_length=128)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)


class KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keys: list[ApiKey] = Field(default_factory=list)


class KeysFileError(Exception):
    """The keys file is missing or malformed; the message says which and how to fix it."""


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def load_keys_file(path: Path) -> KeysFile:
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeysFileError(
            f"API keys file {path} not found; create a key with "
            f"`medgo-gateway keys add --file {path} --name NAME --role clinician`"
        ) from exc
    try:
        return KeysFile.model_validate(json.loads(raw))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise KeysFileError(f"API keys file {path} is not valid: {exc}".splitlines()[0]) from exc


def add_key(
    path: Path,
    *,
    name: str,
    role: Role,
    department: str | None = None,
    requests_per_minute: int | None = None,
    tokens_per_minute: int | None = None,
) -> tuple[str, ApiKey]:
    """Create a key, store its hash (atomic replace) and return the clear key once."""
    keys = load_keys_file(path) if path.exists() else KeysFile()
    if any(k.name == name for k in keys.keys):
        raise KeysFileError(f"a key named {name!r} already exists in {path}")
    clear = KEY_PREFIX + secrets.token_urlsafe(32)
    entry = ApiKey(
        id="u_" + secrets.token_hex(8),
        name=name,
        role=role,
        department=department,
        sha256=hash_key(clear),
        requests_per_minute=requests_per_minute,
        tokens_per_minute=tokens_per_minute,
    )
    keys.keys.append(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(keys.model_dump_json(indent=2, exclude_none=True))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)
    return clear, entry


class KeyStore:
    """Looks up callers by key hash; reloads the file when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._by_hash: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self.reload()

    def reload(self) -> None:
        """Load the file now; raises `KeysFileError` (the old keys stay in force)."""
        mtime = self.path.stat().st_mtime_ns if self.path.exists() else -1
        keys = load_keys_file(self.path)
        with self._lock:
            self._by_hash = {k.sha256: k for k in keys.keys}
            self._by_id = {k.id: k for k in keys.keys}
            self._mtime_ns = mtime

    def _maybe_reload(self) -> None:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return
        if mtime != self._mtime_ns:
            try:
                self.reload()
            except KeysFileError:
                # A half-edited file must not lock everyone out: keep the last good keys.
                self._mtime_ns = mtime

    def lookup(self, key: str) -> ApiKey | None:
        self._maybe_reload()
        digest = hash_key(key)
        entry = self._by_hash.get(digest)
        if entry is not None and hmac.compare_digest(entry.sha256, digest):
            return entry
        return None

    def by_id(self, key_id: str) -> ApiKey | None:
        """The key a session was issued for, if it is still in the file."""
        self._maybe_reload()
        return self._by_id.get(key_id)
