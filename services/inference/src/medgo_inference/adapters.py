"""Serving manifest → which LoRA adapters to load and unload: validation and a pure diff.

No I/O beyond reading small files of the adapter directories, no HTTP: `sync.py` applies
what `plan_sync` returns. Kept apart so the rules are unit-tested without a server:

- A manifest is **validated whole before anything changes**: every adapter directory
  exists and is a PEFT LoRA (`modeldir.check_adapter`), its rank fits the server's
  `--max-lora-rank`, and its `adapter_config.json` was trained on the base this server
  serves. One bad adapter rejects the manifest; the loaded set stays as it is.
- The plan **loads before it unloads**: new adapters first, then (after the gateways
  have switched, see `sync.py`) the ones the manifest dropped. An adapter whose name
  stays but whose directory changed is reloaded in place.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from medgo_common.schemas.serving import ServingManifest

from medgo_inference.modeldir import ModelDirError, check_adapter

logger = logging.getLogger("medgo.inference.adapters")


class ManifestRejected(Exception):
    """The manifest cannot be served as a whole; the message is one line for operators."""


@dataclass(frozen=True)
class AdapterSpec:
    """One adapter as vLLM's `POST /v1/load_lora_adapter` takes it."""

    name: str
    path: str


@dataclass(frozen=True)
class SyncPlan:
    load: tuple[AdapterSpec, ...] = ()
    reload: tuple[AdapterSpec, ...] = ()  # same name, new directory: load in place
    unload: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.load or self.reload or self.unload)


def manifest_base(manifest: ServingManifest, manifest_path: Path) -> Path:
    """The base model directory the manifest names (relative paths: manifest-relative)."""
    return manifest_path.parent / manifest.base_model


def _same_base(recorded: str, served: Path) -> bool:
    """Whether the base an adapter records (`base_model_name_or_path`) is `served`.

    PEFT records the path or hub id it was trained from. A path is compared after
    resolving symlinks; a hub id (or a path from another machine) matches the served
    directory's name or the `_name_or_path` its config.json records.
    """
    candidate = Path(recorded)
    if candidate.is_dir():
        return candidate.resolve() == served.resolve()
    names = {served.name, served.resolve().name}
    try:
        config = json.loads((served / "config.json").read_text(encoding="utf-8"))
        names.add(str(config.get("_name_or_path") or ""))
    except (OSError, ValueError):
        pass
    return recorded in names or candidate.name in names


def _check_base(name: str, directory: Path, served_base: Path) -> None:
    try:
        config = json.loads((directory / "adapter_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # check_adapter has already rejected an unreadable config
    recorded = config.get("base_model_name_or_path")
    if not recorded:
        logger.warning("adapter records no base model; cannot check it", extra={"adapter": name})
        return
    if not _same_base(str(recorded), served_base):
        raise ManifestRejected(f"adapter {name!r} was trained on {recorded!r}, not on the "
                               f"served base {str(served_base)!r}; serve it on its own base "
                               "(a base-model change is a new inference Deployment)")


def desired_adapters(
    manifest: ServingManifest, manifest_path: Path, served_base: Path, max_lora_rank: int
) -> tuple[AdapterSpec, ...]:
    """The manifest's adapters, each checked; raises `ManifestRejected` on the first bad one."""
    specs = []
    for ref in manifest.adapters:
        directory = manifest_path.parent / ref.path
        try:
            check_adapter(ref.name, directory, max_lora_rank)
        except ModelDirError as exc:
            raise ManifestRejected(str(exc)) from None
        _check_base(ref.name, directory, served_base)
        specs.append(AdapterSpec(ref.name, str(directory)))
    return tuple(specs)


def plan_sync(desired: tuple[AdapterSpec, ...], loaded: dict[str, str]) -> SyncPlan:
    """What to do so that `loaded` (name → path, as vLLM lists it) becomes `desired`."""
    wanted = {spec.name: spec for spec in desired}
    return SyncPlan(
        load=tuple(s for s in desired if s.name not in loaded),
        reload=tuple(s for s in desired if s.name in loaded and loaded[s.name] != s.path),
        unload=tuple(name for name in loaded if name not in wanted),
    )
