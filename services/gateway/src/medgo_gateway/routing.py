"""Which adapter answers a conversation: the serving manifest, read from its file.

Every gateway replica reads the same file (locally `var/models/serving.json`; in
Kubernetes the `serving-manifest` ConfigMap mounted into every pod), so the canary
weight is the same on all of them and survives restarts; nothing routing-related lives
only in a process's memory. The file is re-read every `manifest_poll_s` and compared by
content hash (a ConfigMap volume updates through a symlink swap, see
`medgo_common.schemas.serving.read_manifest`).

- A conversation goes to the candidate when `share(key) < canary.weight`: a hash of its
  key, so every turn sees the same adapter and raising the weight only adds
  conversations to the candidate.
- A manifest that does not parse or validate (weight outside [0, 1], canary naming an
  unknown adapter…) is refused with one log line; the previous one keeps routing.
- The previous manifest's stable adapter is the fall-back while replicas are still
  loading a newly promoted one (or refused it): the old set keeps serving.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from medgo_common.schemas.serving import SERVED_MODEL_NAME, ServingManifest, read_manifest
from pydantic import ValidationError

logger = logging.getLogger("medgo.gateway.routing")


def share(conversation_key: str) -> float:
    """A stable number in [0, 1) per conversation."""
    digest = hashlib.sha256(conversation_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8]) / 2**64


class ManifestRouting:
    """The current serving manifest (and the one before it), followed on disk."""

    def __init__(self, path: Path | None, default_model: str | None) -> None:
        self.path = path
        self.default_model = default_model  # without a manifest: MEDGO_GATEWAY_MODEL_ADAPTER
        self.current: ServingManifest | None = None
        self.previous: ServingManifest | None = None
        self.digest: str | None = None
        self.error: str | None = None

    def reload(self) -> bool:
        """Re-read the file; True when a new valid manifest was adopted."""
        if self.path is None:
            return False
        try:
            digest, manifest = read_manifest(self.path)
        except (OSError, UnicodeDecodeError, ValidationError) as exc:
            self._refuse(f"serving manifest {self.path} refused, routing unchanged: "
                         f"{_reason(exc)}")
            return False
        self.error = None
        if digest == self.digest:
            return False
        if self.current is not None and manifest.stable_adapter != self.current.stable_adapter:
            self.previous = self.current
        self.current, self.digest = manifest, digest
        logger.info("serving manifest adopted", extra={
            "manifest_hash": digest, "stable": manifest.stable_adapter,
            "canary": manifest.canary.model_dump() if manifest.canary else None})  # fmt: skip
        return True

    async def follow(self, poll_s: float) -> None:
        while True:
            await asyncio.sleep(poll_s)
            self.reload()

    def _refuse(self, message: str) -> None:
        if message != self.error:
            logger.error("%s", message)
        self.error = message

    def choices(self, conversation_key: str) -> list[str]:
        """Model names to try, best first: the conversation's arm, then stable fall-backs.

        None in the list means "the first adapter a replica lists" (no manifest and no
        configured adapter: the launcher's default); the caller resolves it.
        """
        m = self.current
        if m is None:
            return [self.default_model] if self.default_model else []
        stable = m.stable_adapter or SERVED_MODEL_NAME
        order = [stable]
        if m.canary_adapter and share(conversation_key) < m.canary.weight:
            order.insert(0, m.canary_adapter)
        if self.previous is not None:
            order.append(self.previous.stable_adapter or SERVED_MODEL_NAME)
        return list(dict.fromkeys(order))

    def stable_choices(self) -> list[str]:
        """What `medgo` means for readiness and `/v1/models`: stable, then fall-back."""
        m = self.current
        if m is None:
            return [self.default_model] if self.default_model else []
        order = [m.stable_adapter or SERVED_MODEL_NAME]
        if self.previous is not None:
            order.append(self.previous.stable_adapter or SERVED_MODEL_NAME)
        return list(dict.fromkeys(order))

    def describe(self) -> dict:
        m = self.current
        return {
            "path": str(self.path) if self.path else None,
            "hash": self.digest,
            "stable": m.stable_adapter if m else self.default_model,
            "canary": m.canary.model_dump() if m and m.canary else None,
            "fallback": self.previous.stable_adapter if self.previous else None,
            "error": self.error,
        }


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        return f"{where}: {err['msg']}" if where else err["msg"]
    return str(exc)
