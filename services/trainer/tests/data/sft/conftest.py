"""Fixtures for the SFT-data tests: the shared data folder and small mixtures."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from medgo_trainer.data.sft.leakage import LeakageConfig, LeakageGuard
from medgo_trainer.settings import TrainerSettings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = TrainerSettings().data_dir
    if not (path / "corpus").is_dir():
        pytest.fail(f"shared data not found at {path}; set MEDGO_TRAINER_DATA_DIR")
    return path


@pytest.fixture(scope="session")
def guard(data_dir: Path) -> LeakageGuard:
    """The real guard over every evaluation item (built once: it indexes ~36k items)."""
    return LeakageGuard.from_eval_harness(data_dir, LeakageConfig())


@pytest.fixture
def write_mixture(tmp_path: Path) -> Callable[[dict], Path]:
    """Write a mixture recipe dict as YAML and return its path."""

    def write(recipe: dict) -> Path:
        path = tmp_path / "mixture.yaml"
        path.write_text(yaml.safe_dump(recipe, allow_unicode=True), encoding="utf-8")
        return path

    return write
