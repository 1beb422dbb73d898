"""Secret files are 0600 from creation, whatever the umask and whatever was there."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from medgo_common.secret_files import write_private_file


@pytest.fixture
def open_umask() -> object:
    """A umask that adds no restriction, as a careless shell might have."""
    previous = os.umask(0)
    yield
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_secret_file_is_owner_only(tmp_path: Path, open_umask: object) -> None:
    path = tmp_path / "token"
    write_private_file(path, "s3cret-value")
    assert _mode(path) == 0o600
    assert path.read_text(encoding="utf-8") == "s3cret-value"


def test_a_wider_file_is_replaced_not_reused(tmp_path: Path, open_umask: object) -> None:
    path = tmp_path / "token"
    path.write_text("old", encoding="utf-8")
    path.chmod(0o644)
    write_private_file(path, "new")
    assert (_mode(path), path.read_text(encoding="utf-8")) == (0o600, "new")
