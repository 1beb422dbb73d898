"""Each image's lock pins every dependency its packages declare.

A package the trainer declares but its image's lock lacks installs unpinned (or, with
the image's resolver settings, not at all): `--engine datatrove` could not import in
the trainer image while CI, on requirements/local-cpu.lock, passed. Which lock and which
packages an image installs is read from its Dockerfile, so a new image is covered too.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile"))
_LOCK = re.compile(r"requirements/([\w.-]+\.lock)")
_PACKAGE = re.compile(r"\./((?:libs|services)/\w+)")
_OURS = {"medgo-common", "medgo-gateway", "medgo-inference", "medgo-feedback", "medgo-trainer"}


def _name(requirement: str) -> str:
    """PEP 503 normalised project name of a requirement or a `name==version` pin."""
    bare = re.split(r"[\s\[<>=!~;@]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", bare).lower()


def _pins(lock: Path) -> set[str]:
    lines = lock.read_text(encoding="utf-8").splitlines()
    return {_name(line) for line in lines if line.strip() and not line.startswith("#")}


def _declared(package_dir: Path) -> set[str]:
    project = tomllib.loads((package_dir / "pyproject.toml").read_text())["project"]
    return {_name(dep) for dep in project.get("dependencies", [])} - _OURS


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_the_image_lock_pins_what_its_packages_declare(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    locks = set(_LOCK.findall(text))
    packages = set(_PACKAGE.findall(text))
    assert len(locks) == 1 and packages, f"{dockerfile}: no lock or no packages found"
    lock = ROOT / "requirements" / locks.pop()
    pinned = _pins(lock)
    missing = {f"{package}: {dep}" for package in sorted(packages)
               for dep in _declared(ROOT / package) if dep not in pinned}
    assert not missing, f"{lock.name} lacks {sorted(missing)}"


def test_the_trainer_image_can_run_the_datatrove_engine() -> None:
    assert "datatrove" in _pins(ROOT / "requirements" / "cuda-trainer.lock")
