"""compose.yaml (and its HTTPS layer deploy/compose/tls.yaml) validates against the
Compose specification's JSON schema (the copy that check-jsonschema vendors, so no
network is needed) and keeps the single-host promises: only the gateway publishes a
port, on 127.0.0.1 only; every MedGo service has a healthcheck, start order follows
health, the model store and the database are named volumes, secrets are files, never
inline values, and vLLM's API key reaches inference and the gateway. The secret files
init-secrets.sh writes are readable by their readers only (0640 to the services'
group, 0600 for PostgreSQL's password)."""

from __future__ import annotations

import copy
import json
import os
import shutil
import stat
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]

SERVICES = {"gateway", "inference", "feedback", "trainer", "postgres", "redis"}


@pytest.fixture(scope="session")
def compose_schema() -> dict:
    schema = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema.read_text(encoding="utf-8"))


def test_compose_matches_the_compose_specification(compose: dict, compose_schema: dict) -> None:
    jsonschema.validate(compose, compose_schema)


def test_the_tls_layer_matches_the_specification_and_serves_https(compose_schema: dict) -> None:
    layer = yaml.safe_load((ROOT / "deploy" / "compose" / "tls.yaml").read_text("utf-8"))
    jsonschema.validate(layer, compose_schema)
    gateway = layer["services"]["gateway"]
    assert gateway["environment"]["MEDGO_GATEWAY_TLS_CERTFILE"] == "/run/secrets/tls.crt"
    assert "https://127.0.0.1:8000/readyz" in gateway["healthcheck"]["test"][-1]
    for secret in layer["secrets"].values():
        assert secret["file"].startswith("./var/secrets/compose/")


def test_schema_rejects_a_misspelt_key(compose: dict, compose_schema: dict) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["gateway"]["helthcheck"] = broken["services"]["gateway"]["healthcheck"]
    with pytest.raises(jsonschema.ValidationError, match="helthcheck"):
        jsonschema.validate(broken, compose_schema)


def test_only_the_gateway_publishes_a_port(compose: dict) -> None:
    assert set(compose["services"]) == SERVICES
    published = {name for name, svc in compose["services"].items() if svc.get("ports")}
    assert published == {"gateway"}
    assert compose["services"]["gateway"]["ports"] == ["127.0.0.1:8000:8000"]


def test_services_are_healthchecked_and_start_in_health_order(compose: dict) -> None:
    services = compose["services"]
    for name, svc in services.items():
        assert svc["healthcheck"]["test"], name
    assert services["gateway"]["depends_on"]["inference"]["condition"] == "service_healthy"
    assert services["feedback"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["trainer"]["depends_on"]["feedback"]["condition"] == "service_healthy"


def test_model_store_and_database_are_named_volumes(compose: dict) -> None:
    services = compose["services"]
    assert "models:/var/lib/medgo/models" in services["inference"]["volumes"]
    assert "models:/var/lib/medgo/models" in services["trainer"]["volumes"]
    assert "feedback-db:/var/lib/postgresql/data" in services["postgres"]["volumes"]
    assert {"models", "feedback-db"} <= set(compose["volumes"])


def test_secrets_are_files_and_feedback_uses_postgres(compose: dict) -> None:
    for name, secret in compose["secrets"].items():
        assert set(secret) == {"file"}, name
        assert secret["file"].startswith("./var/secrets/compose/"), name
    services = compose["services"]
    assert "MEDGO_FEEDBACK_DATABASE_URL" in services["feedback"]["secrets"]
    assert "MEDGO_FEEDBACK_SERVICE_TOKENS" in services["feedback"]["secrets"]
    assert "MEDGO_INFERENCE_API_KEY" in services["inference"]["secrets"]
    assert "MEDGO_GATEWAY_INFERENCE_API_KEY" in services["gateway"]["secrets"]
    gateway_env = services["gateway"]["environment"]
    assert gateway_env["MEDGO_GATEWAY_API_KEYS_FILE"] == "/run/secrets/api_keys.json"
    # No token or password may be written into compose.yaml itself, only secret paths.
    for svc in services.values():
        for key, value in svc.get("environment", {}).items():
            if any(word in key for word in ("TOKEN", "PASSWORD", "DATABASE_URL")):
                assert str(value).startswith("/run/secrets/"), key
            # init-secrets.sh writes random secrets: no service may need local mode
            assert not key.endswith("_LOCAL_MODE"), key


def test_init_secrets_files_are_readable_by_their_readers_only(tmp_path: Path) -> None:
    """Run on a copy of the checkout's layout; the group is this user's own (changing to
    the images' 10001 needs root). A second run puts back modes an older run left."""
    script = tmp_path / "deploy" / "compose" / "init-secrets.sh"
    script.parent.mkdir(parents=True)
    shutil.copy(ROOT / "deploy" / "compose" / "init-secrets.sh", script)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "medgo-gateway").symlink_to(
        Path(sys.executable).with_name("medgo-gateway"))
    env = os.environ | {"MEDGO_SECRETS_GID": str(os.getgid())}
    secrets = tmp_path / "var" / "secrets" / "compose"
    for _ in range(2):
        subprocess.run(["bash", str(script)], env=env, check=True, capture_output=True,
                       timeout=120)
        modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in secrets.iterdir()}
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o700
        assert modes.pop("postgres_password") == 0o600
        assert {"MEDGO_TRAINER_SERVICE_TOKENS", "api_keys.json", "tls.key"} <= set(modes)
        assert set(modes.values()) == {0o640}, modes
        assert {path.stat().st_gid for path in secrets.iterdir()} == {os.getgid()}
        for path in secrets.iterdir():
            path.chmod(0o644)  # what the script used to leave
