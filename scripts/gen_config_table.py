"""Writes docs/configuration.md: ONE table of every setting of every MedGo service.

The table is generated from the four settings classes (env name, default, meaning) and
from the deployment files (where each variable is set: the images' Dockerfiles,
compose.yaml, and each rendered Kubernetes overlay), so it cannot drift from the code:
tests/deploy/test_config_table.py fails when the committed file is stale.

    .venv/bin/python scripts/gen_config_table.py           # rewrite docs/configuration.md
    .venv/bin/python scripts/gen_config_table.py --check   # exit 1 if it is out of date

Needs kubectl (for `kubectl kustomize`) on PATH, like the deploy tests.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import yaml
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
OVERLAYS = ("local-cpu", "prod-a100")
DOCKERFILES = (
    "services/gateway/Dockerfile",
    "services/inference/Dockerfile",
    "services/inference/Dockerfile.cpu",
    "services/feedback/Dockerfile",
    "services/trainer/Dockerfile",
)
# Fields whose settings.py gives no description yet: the plain meaning, said once here.
GENERIC_MEANING = {"host": "interface to listen on", "port": "port to listen on"}


def settings_classes() -> dict[str, type[BaseSettings]]:
    """Each service's settings class, and medgo-eval's (lazy: heavy packages behind them)."""
    from medgo_feedback.settings import FeedbackSettings
    from medgo_gateway.settings import GatewaySettings
    from medgo_inference.settings import InferenceSettings
    from medgo_trainer.evaluation.settings import EvalSettings
    from medgo_trainer.settings import TrainerSettings

    return {
        "gateway": GatewaySettings,
        "inference": InferenceSettings,
        "feedback": FeedbackSettings,
        "trainer": TrainerSettings,
        "evaluation (medgo-eval)": EvalSettings,
    }


def env_name(cls: type[BaseSettings], field: str) -> str:
    return f"{cls.model_config.get('env_prefix', '')}{field}".upper()


def settings_env_names() -> set[str]:
    """Every environment variable some MedGo settings class reads."""
    return {env_name(cls, f) for cls in settings_classes().values() for f in cls.model_fields}


def _default(field: FieldInfo) -> str:
    """The default as an operator reads it; machine paths shown relative to `<repo>`."""
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
    elif field.default is PydanticUndefined:
        return "(required)"
    else:
        value = field.default
    if value is None or value == {} or value == []:
        return "—"
    text = str(value.get_secret_value() if hasattr(value, "get_secret_value") else value)
    text = text.replace(str(ROOT), "<repo>").replace(f"{ROOT.parent}/", "<repo>/../")
    return f"`{text}`" if text else "—"


def render_overlay(name: str) -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        sys.exit("gen_config_table: kubectl not found on PATH (needed for kubectl kustomize)")
    out = subprocess.run(
        [kubectl, "kustomize", str(ROOT / "deploy" / "k8s" / "overlays" / name)],
        check=True, capture_output=True, text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def k8s_env_names(objects: list[dict]) -> set[str]:
    """Variables set by a rendered overlay: containers' `env` and the keys of the
    ConfigMaps they load with `envFrom`."""
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects
                  if o["kind"] == "ConfigMap"}
    names: set[str] = set()
    for obj in objects:
        for container in pod_containers(obj):
            names.update(item["name"] for item in container.get("env", []))
            for source in container.get("envFrom", []):
                names.update(configmaps.get(source.get("configMapRef", {}).get("name"), {}))
    return names


def pod_containers(obj: dict) -> Iterator[dict]:
    """Containers and init containers of a Deployment, Job or CronJob's pod template."""
    spec = obj.get("spec", {})
    if obj["kind"] == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    pod = spec.get("template", {}).get("spec", {})
    yield from pod.get("initContainers", [])
    yield from pod.get("containers", [])


def compose_env_names(compose: dict) -> set[str]:
    """Variables compose.yaml sets: `environment` keys and secrets named after a variable
    (exported by the images' entrypoint, deploy/docker/secret-env.sh)."""
    names: set[str] = set()
    for service in compose["services"].values():
        env = service.get("environment", {})
        names.update(env if isinstance(env, dict) else (e.split("=", 1)[0] for e in env))
        for secret in service.get("secrets", []):
            target = secret if isinstance(secret, str) else secret.get("target", secret["source"])
            names.add(target)
    return names


def dockerfile_env_names(path: Path) -> set[str]:
    """`ENV NAME=value` names of a Dockerfile's last (runtime) stage."""
    text = path.read_text(encoding="utf-8").replace("\\\n", " ")
    runtime = text.rsplit("\nFROM ", 1)[-1]
    names: set[str] = set()
    for line in runtime.splitlines():
        if line.startswith("ENV "):
            names.update(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", line))
    return names


def where_set() -> dict[str, list[str]]:
    """Env name → the places that set it, in a fixed order."""
    places: dict[str, list[str]] = {}

    def mark(names: set[str], label: str) -> None:
        for name in names:
            places.setdefault(name, []).append(label)

    mark(set().union(*(dockerfile_env_names(ROOT / f) for f in DOCKERFILES)), "image")
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text(encoding="utf-8"))
    mark(compose_env_names(compose), "compose")
    for overlay in OVERLAYS:
        mark(k8s_env_names(render_overlay(overlay)), f"k8s {overlay}")
    return places


def render() -> str:
    places = where_set()
    lines = [
        "# Configuration: every setting of every service",
        "",
        "<!-- Generated by scripts/gen_config_table.py from the settings classes and the",
        "     deployment files; do not edit by hand. tests/deploy checks it is current. -->",
        "",
        "Each service reads only its own `MEDGO_<SERVICE>_*` variables, in its `settings.py`",
        "(one pydantic-settings class). Local mode, compose.yaml and Kubernetes set the same",
        "variables: *set in* says where a deployment sets one (`image` = the service's",
        "Dockerfile, `compose` = compose.yaml, `k8s <overlay>` = the rendered overlay's",
        "ConfigMaps and Secret references); anywhere else the default applies. In compose,",
        "a secret named after a variable is exported to it by the images' entrypoint.",
        "",
        "| service | env name | default | meaning | set in |",
        "| --- | --- | --- | --- | --- |",
    ]
    for service, cls in settings_classes().items():
        for field_name, field in cls.model_fields.items():
            name = env_name(cls, field_name)
            meaning = field.description or GENERIC_MEANING.get(field_name, "—")
            meaning = meaning.replace("|", "\\|")
            where = ", ".join(places.get(name, [])) or "—"
            lines.append(
                f"| {service} | `{name}` | {_default(field)} | {meaning} | {where} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is stale")
    args = parser.parse_args()
    os.chdir(ROOT)  # path defaults are relative to the checkout
    text = render()
    if args.check:
        current = DOC.read_text(encoding="utf-8") if DOC.exists() else ""
        if current != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run scripts/gen_config_table.py")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
