"""Strict offline validation of custom resources against their CRD schemas.

The schemas are the ones in ../shared/k8s-schemas (see its README): the CRD YAML files
carry them under `spec.versions[].schema.openAPIV3Schema`, the JSON files are that
schema already extracted. A CRD schema says nothing about unknown fields (the API server
prunes them silently, so a misspelt field is simply lost); `strict` adds
`additionalProperties: false` to every object schema that lists its properties and
does not preserve unknown fields, so such a field is an error here.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "k8s-schemas"
#: The JSON files are named by the lowercased kind; their CamelCase kinds.
JSON_KINDS = {k.lower(): k for k in (
    "Certificate", "Gateway", "HTTPRoute", "ClusterQueue", "LocalQueue", "ResourceFlavor",
    "ServiceMonitor", "PodMonitor", "PrometheusRule")}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema`, changed in place so that unknown fields are errors at every level."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict):
            continue
        if ("properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
        for value in node.values():
            if isinstance(value, dict):
                stack.append(value)
            elif isinstance(value, list):
                stack.extend(value)
    return schema


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster on CRDs


@cache
def _schemas() -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) → strict schema, for every CRD and JSON schema shipped."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted((SCHEMAS / "crds").glob("*.yaml")):
        crd = yaml.load(path.read_text(encoding="utf-8"), Loader=_LOADER)
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = version["schema"]["openAPIV3Schema"]
            found[(f"{group}/{version['name']}", kind)] = strict(schema)
    for path in sorted((SCHEMAS / "json").glob("*/*.json")):
        # <group>/<kind lowercased>_<version>.json
        kind_lower, _, version = path.stem.rpartition("_")
        schema = json.loads(path.read_text(encoding="utf-8"))
        found[(f"{path.parent.name}/{version}", JSON_KINDS[kind_lower])] = strict(schema)
    return found


def known(obj: dict[str, Any]) -> bool:
    return (obj.get("apiVersion"), obj.get("kind")) in _schemas()


def validate(obj: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` (naming the object and the path) unless `obj`
    matches its kind's schema with no unknown field."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    schema = _schemas().get(key)
    if schema is None:
        raise KeyError(f"no schema for {key[1]} {key[0]} in {SCHEMAS}")
    error = jsonschema.exceptions.best_match(
        jsonschema.Draft7Validator(schema).iter_errors(obj))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise jsonschema.ValidationError(
            f"{obj['kind']} {obj.get('metadata', {}).get('name')}: {where}: {error.message}")
