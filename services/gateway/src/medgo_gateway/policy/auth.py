"""API keys: a file of SHA-256 hashes with a role, department and quotas per key.

Only hashes are stored, so the keys file (a Kubernetes secret in production) never
holds a usable credential. Each key carries a random pseudonymous `id` that the
gateway records as the user / rater, so neither the key nor a person's name reaches
the feedback store. The file is re-read when its modification time changes, so
`medgo-gateway keys add` takes effect without a restart; a key that leaves the file
(or whose hash changes under the same id) is reported once by `take_removed`, so its
sessions can be ended on every replica (`revocation.py`).
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
KEY_ID_PATTERN = r"u_[0-9a-f]{16}"  # a key's pseudonymous user id (unanchored)


class Role(StrEnum):
    clinician = "clinician"
    api_client = "api-client"
    ops = "ops"


class ApiKey(BaseModel):
    """One key as stored: never the key itself, only its SHA-256."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=rf"^{KEY_ID_PATTERN}$", description="pseudonymous user id")
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
    _write_keys_file(path, keys)
    return clear, entry


def remove_key(path: Path, name_or_id: str) -> ApiKey:
    """Delete the key with this name or user id (atomic replace); returns its entry.

    Gateways reading the file end the key's sessions on every replica when they
    notice (`KeyStore.take_removed`).
    """
    keys = load_keys_file(path)
    gone = [k for k in keys.keys if name_or_id in (k.name, k.id)]
    if not gone:
        raise KeysFileError(f"no key named or with id {name_or_id!r} in {path}")
    keys.keys = [k for k in keys.keys if k not in gone]
    _write_keys_file(path, keys)
    return gone[0]


def _write_keys_file(path: Path, keys: KeysFile) -> None:
    """Write to a 0600 temporary file, fsync, then rename: readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(keys.model_dump_json(indent=2, exclude_none=True))
        fh.flush()
        os.fsync(fh.fileno())
    tmp.replace(path)


class KeyStore:
    """Looks up callers by key hash; reloads the file when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._mtime_ns = -1
        self._by_hash: dict[str, ApiKey] = {}
        self._by_id: dict[str, ApiKey] = {}
        self._removed: set[str] = set()
        self.reload()

    def reload(self) -> None:
        """Load the file now; raises `KeysFileError` (the old keys stay in force)."""
        mtime = self.path.stat().st_mtime_ns if self.path.exists() else -1
        keys = load_keys_file(self.path)
        by_id = {k.id: k for k in keys.keys}
        with self._lock:
            self._removed |= {key_id for key_id, old in self._by_id.items()
                              if key_id not in by_id or by_id[key_id].sha256 != old.sha256}
            self._by_hash = {k.sha256: k for k in keys.keys}
            self._by_id = by_id
            self._mtime_ns = mtime

    def take_removed(self) -> set[str]:
        """Ids of keys removed or re-hashed since the last call (each reported once)."""
        if not self._removed:
            return set()
        with self._lock:
            removed, self._removed = self._removed, set()
        return removed

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
