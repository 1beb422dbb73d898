"""The committed development secrets are all known to the start-up check, so a service
outside local mode refuses every one of them (medgo_common.startup)."""

from __future__ import annotations

from pathlib import Path

import yaml
from medgo_common.startup import KNOWN_DEV_SECRETS, weak_secret_reason

DEV_SECRETS = Path(__file__).resolve().parents[2] / "deploy/k8s/overlays/local-cpu/dev-secrets.yaml"


def test_every_committed_dev_secret_is_refused() -> None:
    values = [value for doc in yaml.safe_load_all(DEV_SECRETS.read_text(encoding="utf-8"))
              for value in doc["stringData"].values()]
    # `name=token,...` lists carry the same tokens as the single entries
    tokens = {part.partition("=")[2] if "=" in part else part
              for value in values for part in value.split(",")}
    assert tokens <= KNOWN_DEV_SECRETS, tokens - KNOWN_DEV_SECRETS
    assert all(weak_secret_reason(token) for token in tokens)


def test_a_long_random_secret_passes() -> None:
    assert weak_secret_reason("Zq8WmV3rT1yPe6LuK0sXa9NdH4fJc7Gb2oRi5EtYwUk") is None
    assert weak_secret_reason("x" * 31) == "is shorter than 32 bytes"


SERVICES = ("gateway", "inference", "feedback", "trainer")


def test_only_the_local_overlay_runs_in_local_mode(rendered: dict[str, list[dict]]) -> None:
    """local-cpu ships the development secrets, so every service there says local mode
    (else each refuses to start); prod-a100 never does, so a weak secret stops it."""
    for overlay, local in (("local-cpu", "true"), ("prod-a100", None)):
        for service in SERVICES:  # `<service>-config`, with or without a hash suffix
            (config,) = [doc.get("data", {}) for doc in rendered[overlay]
                         if doc["kind"] == "ConfigMap"
                         and doc["metadata"]["name"].startswith(f"{service}-config")]
            setting = f"MEDGO_{service.upper()}_LOCAL_MODE"
            assert config.get(setting) == local, (overlay, setting)
