"""Session fixtures shared by every test in the repository: medgo-tiny and a real vLLM.

- `medgo_tiny`: paths of the embedded model (built by the trainer if it is missing)
  and a serving manifest for it that belongs to this test session only, so a test that
  promotes a checkpoint cannot change what the other tests are served.
- `vllm_server`: base URL of the real vLLM OpenAI server, booted once per session
  through our launcher (`medgo-inference`), serving the base as `medgo` and the SFT
  adapter as `medgo-tiny-sft`. Tests that use it are marked `vllm` automatically.

`MEDGO_TEST_MODEL_DIR=<dir with base/ and adapters/sft/>` serves another model of the
same layout instead of building medgo-tiny (for instance a scratch model while
medgo-tiny is being rebuilt); the trainer's own settings say where medgo-tiny is built.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from medgo_common.schemas.serving import AdapterRef, ServingManifest
from medgo_common.supervise import ServerStartError, launched_server

TINY_ADAPTER = "medgo-tiny-sft"
# CPU boot of vLLM is 25-90 s on a loaded 2-core box; leave room, fail with the log.
VLLM_BOOT_TIMEOUT_S = 420


@dataclass(frozen=True)
class MedgoTiny:
    """Where the embedded model lives, and the session's manifest that serves it."""

    root: Path
    base: Path
    adapter: Path
    adapter_name: str
    manifest: Path


def _is_built(root: Path) -> bool:
    return (root / "base" / "config.json").is_file() and (
        root / "adapters" / "sft" / "adapter_config.json"
    ).is_file()


def _built_medgo_tiny() -> Path:
    """The trainer's cached build (a no-op when up to date; scripts/test.sh runs it first)."""
    from medgo_trainer.settings import TrainerSettings
    from medgo_trainer.training.tiny import TinyPaths, build_tiny

    trainer = TrainerSettings()
    build_tiny(trainer, seed=trainer.tiny_seed, progress=False)
    return TinyPaths(trainer.model_dir / "medgo-tiny").root


@pytest.fixture(scope="session")
def medgo_tiny(tmp_path_factory: pytest.TempPathFactory) -> MedgoTiny:
    override = os.environ.get("MEDGO_TEST_MODEL_DIR")
    root = Path(override) if override else _built_medgo_tiny()
    if not _is_built(root):
        pytest.fail(f"{root} has no base/ and adapters/sft/ model")
    base, adapter = root / "base", root / "adapters" / "sft"
    manifest = tmp_path_factory.mktemp("serving") / "serving.json"
    ServingManifest(
        checkpoint_id=TINY_ADAPTER,
        base_model=str(base.resolve()),
        adapters=[AdapterRef(name=TINY_ADAPTER, path=str(adapter.resolve()))],
    ).save(manifest)
    return MedgoTiny(root, base, adapter, TINY_ADAPTER, manifest)


@pytest.fixture(scope="session")
def vllm_server(medgo_tiny: MedgoTiny, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("vllm") / "vllm.log"
    settings = {"MEDGO_INFERENCE_MANIFEST": str(medgo_tiny.manifest)}  # free ports: launcher
    try:
        with launched_server(settings, log_path, VLLM_BOOT_TIMEOUT_S) as url:
            yield url
    except ServerStartError as exc:
        pytest.fail(str(exc), pytrace=False)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that boots real vLLM carries the `vllm` marker (`-m "not vllm"`)."""
    for item in items:
        if "vllm_server" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.vllm)
