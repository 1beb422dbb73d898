"""Fixtures for the deployment checks: rendered overlays, compose.yaml, the settings.

No cluster and no container engine: overlays are rendered with `kubectl kustomize` (the
kubectl of the machine image, Debian package `kubectl`) and checked offline; compose.yaml
and the Dockerfiles are read as files. The helpers that find env names and containers
live in scripts/gen_config_table.py (which also builds docs/configuration.md), loaded
here as a module so the table and the checks cannot disagree.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
OVERLAYS = ("local-cpu", "prod-a100")


def _load(name: str, path: Path) -> ModuleType:
    """A helper module by path (tests run with --import-mode=importlib, so test modules
    cannot import their neighbours)."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve their module by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def config_table() -> ModuleType:
    """scripts/gen_config_table.py as a module."""
    return _load("gen_config_table", ROOT / "scripts" / "gen_config_table.py")


@pytest.fixture(scope="session")
def netpol() -> ModuleType:
    """tests/deploy/netpol.py, the NetworkPolicy evaluator."""
    return _load("medgo_deploy_netpol", Path(__file__).with_name("netpol.py"))


@pytest.fixture(scope="session")
def k8s_schemas() -> object:
    """The strict validator of tests/deploy/k8s_schemas.py on the shared schema directory."""
    module = _load("medgo_deploy_k8s_schemas", Path(__file__).with_name("k8s_schemas.py"))
    return module.Validator(module.schemas_dir(ROOT))


@pytest.fixture(scope="session")
def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.skip("kubectl not on PATH: install Debian's `kubectl` to build the overlays")
    return path


@pytest.fixture(scope="session")
def rendered(kubectl: str) -> dict[str, list[dict]]:
    """Overlay name → its rendered objects (`kubectl kustomize` must succeed)."""
    result: dict[str, list[dict]] = {}
    for overlay in OVERLAYS:
        proc = subprocess.run(
            [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / overlay)],
            capture_output=True, text=True, timeout=60,
        )
        assert proc.returncode == 0, f"kustomize {overlay} failed:\n{proc.stderr}"
        result[overlay] = [doc for doc in yaml.safe_load_all(proc.stdout) if doc]
    return result


@pytest.fixture(scope="session")
def compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))

