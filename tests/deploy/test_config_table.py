"""docs/configuration.md is the generated table of every setting; it must match what
scripts/gen_config_table.py produces from the settings classes and deploy files now."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_configuration_table_is_current(
    config_table: ModuleType, kubectl: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    del kubectl  # the generator renders the overlays too
    monkeypatch.chdir(ROOT)  # path defaults are shown relative to the checkout
    committed = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert committed == config_table.render(), (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_config_table.py"
    )


def test_every_setting_has_a_row(config_table: ModuleType) -> None:
    table = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for name in config_table.settings_env_names():
        assert f"| `{name}` |" in table
