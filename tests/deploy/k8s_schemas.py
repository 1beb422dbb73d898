"""Strict offline validation of any Kubernetes object: core kinds against the OpenAPI
schemas `kubernetes-validate` bundles, custom resources against the schemas in the
shared schema directory (../shared/k8s-schemas beside the checkout, or
MEDGO_K8S_SCHEMAS_DIR): the CRDs' openAPIV3Schema (crds/*.yaml) and extracted JSON
schemas (json/<group>/<kind>_<version>.json).

Strict means an unknown field is an error, as the API server would silently drop it (a
misspelt probe, a selector that never applies): kubernetes-validate's strict schemas
for core kinds, and for custom resources every object schema that lists `properties`
gets `additionalProperties: false` unless it says otherwise or preserves unknown fields.
A kind with no schema at all is an error too, so a new custom resource cannot pass
unvalidated: add its schema to the shared directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

# The oldest Kubernetes minor we support.
K8S_VERSION = "1.32.0"
# The CRDs are megabytes of YAML: libyaml's loader reads them 15 times faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def schemas_dir(root: Path) -> Path:
    """The shared schema directory for the checkout at `root`."""
    configured = os.environ.get("MEDGO_K8S_SCHEMAS_DIR")
    return Path(configured) if configured else root.parent / "shared" / "k8s-schemas"


def _strict(schema: Any) -> Any:
    """A copy of `schema` that rejects fields it does not declare."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if ("properties" in out and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")):
        out["additionalProperties"] = False
    return out


class Validator:
    """`errors(obj)` lists what is wrong with one object, [] when it is valid."""

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"no Kubernetes schema directory at {directory} "
                                    "(set MEDGO_K8S_SCHEMAS_DIR)")
        self.custom: dict[tuple[str, str], dict] = {}  # (apiVersion, Kind) → schema
        self._by_file: dict[tuple[str, str, str], dict] = {}  # (group, version, kind lower)
        for crd_file in sorted((directory / "crds").glob("*.yaml")):
            crd = yaml.load(crd_file.read_text(encoding="utf-8"), Loader=_LOADER)
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = version["schema"]["openAPIV3Schema"]
                self.custom[(f"{group}/{version['name']}", kind)] = _strict(schema)
        for json_file in sorted((directory / "json").glob("*/*.json")):
            kind, _, version = json_file.stem.rpartition("_")
            schema = json.loads(json_file.read_text(encoding="utf-8"))
            self._by_file[(json_file.parent.name, version, kind)] = _strict(schema)

    def schema_for(self, api_version: str, kind: str) -> dict | None:
        """The custom resource schema of this apiVersion and kind, if the directory has it."""
        if (api_version, kind) in self.custom:
            return self.custom[(api_version, kind)]
        group, _, version = api_version.rpartition("/")
        return self._by_file.get((group, version, kind.lower()))

    def errors(self, obj: Mapping) -> list[str]:
        name = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        schema = self.schema_for(obj.get("apiVersion", ""), obj.get("kind", ""))
        if schema is not None:
            validator = jsonschema.Draft7Validator(schema)
            return [f"{name}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
                    for e in sorted(validator.iter_errors(obj), key=str)]
        try:
            kubernetes_validate.validate(dict(obj), K8S_VERSION, strict=True)
        except kubernetes_validate.SchemaNotFoundError:
            return [f"{name}: no schema for {obj.get('apiVersion')} {obj.get('kind')}: "
                    "neither a core kind nor a custom resource of the schema directory"]
        except kubernetes_validate.ValidationError as exc:
            return [f"{name}: {'.'.join(map(str, exc.path)) or '(root)'}: {exc.message}"]
        return []
