"""Every overlay builds with `kubectl kustomize` and every object it renders validates
offline and strictly (k8s_schemas.py: kubernetes-validate for core kinds, the shared
CRD schemas for custom resources, unknown fields and unknown kinds rejected), and the
overlays say what they promise: CPU/medgo-tiny/SQLite locally, A100/TP 8/PostgreSQL/
canary/HTTPS in production."""

from __future__ import annotations

import json
import re

import pytest


def find(objects: list[dict], kind: str, name: str) -> dict:
    """The one object of `kind` named `name` (generated ConfigMaps by their prefix)."""
    generated = re.compile(rf"{re.escape(name)}-[a-z0-9]{{10}}")
    matches = [
        o for o in objects
        if o["kind"] == kind
        and (o["metadata"]["name"] == name or generated.fullmatch(o["metadata"]["name"]))
    ]
    assert len(matches) == 1, f"expected one {kind} {name}, found {len(matches)}"
    return matches[0]


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_every_object_validates_strictly(
    rendered: dict[str, list[dict]], overlay: str, k8s_schemas: object
) -> None:
    errors = [e for obj in rendered[overlay] for e in k8s_schemas.errors(obj)]
    assert not errors, "\n".join(errors)


def test_prod_renders_custom_resources_and_they_are_checked(rendered: dict) -> None:
    """prod has at least one custom resource (the gateway's Certificate), so the custom
    schema path above is exercised on real output."""
    assert find(rendered["prod-a100"], "Certificate", "gateway-tls")


def test_schema_validation_rejects_a_misspelt_field(k8s_schemas: object) -> None:
    """The validator used above does catch what the API server would drop."""
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "x"},
        "spec": {
            "selector": {"matchLabels": {"app": "x"}},
            "template": {
                "metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "x", "image": "x", "readynessProbe": {}}]},
            },
        },
    }
    (error,) = k8s_schemas.errors(deployment)
    assert "Deployment/x" in error and "readynessProbe" in error


def test_custom_resources_are_strict_and_unknown_kinds_fail(k8s_schemas: object) -> None:
    certificate = {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "c"},
        "spec": {"secretName": "s", "issuerRef": {"name": "ca", "kind": "ClusterIssuer"},
                 "dnsName": ["x.internal"]},
    }
    (error,) = k8s_schemas.errors(certificate)
    assert error.startswith("Certificate/c: spec: ") and "'dnsName'" in error
    job = {"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "j"},
           "spec": {"pytorchReplicaSpecs": {"Master": {"replicas": 1, "templat": {}}}}}
    assert any("templat" in e for e in k8s_schemas.errors(job))
    unknown = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert k8s_schemas.errors(unknown) == [
        "Widget/w: no schema for example.com/v1 Widget: neither a core kind nor a custom "
        "resource of the schema directory"]


def test_local_cpu_serves_medgo_tiny_on_cpu_with_sqlite(rendered: dict) -> None:
    objects = rendered["local-cpu"]
    inference = find(objects, "Deployment", "inference")
    pod = inference["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"].startswith("medgo/inference-cpu:")
    assert pod["initContainers"][0]["name"] == "seed-models"
    config = find(objects, "ConfigMap", "inference-config")["data"]
    assert config["MEDGO_INFERENCE_DEVICE"] == "cpu"
    feedback = find(objects, "ConfigMap", "feedback-config")["data"]
    assert feedback["MEDGO_FEEDBACK_DATABASE_URL"].startswith("sqlite:")
    assert find(objects, "PersistentVolumeClaim", "feedback-db")
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] != "gateway":
            assert obj["spec"]["replicas"] == 1, obj["metadata"]["name"]
        if obj["kind"] == "HorizontalPodAutoscaler":
            assert obj["spec"]["maxReplicas"] == 1
    assert not any(o["kind"] == "Deployment" and "canary" in o["metadata"]["name"]
                   for o in objects)


def test_prod_a100_serves_72b_with_tensor_parallel_on_a100(rendered: dict) -> None:
    objects = rendered["prod-a100"]
    config = find(objects, "ConfigMap", "inference-config")["data"]
    assert config["MEDGO_INFERENCE_TENSOR_PARALLEL_SIZE"] == "8"
    assert config["MEDGO_INFERENCE_DEVICE"] == "cuda"
    for name in ("inference", "inference-canary"):
        pod = find(objects, "Deployment", name)["spec"]["template"]["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "8", name
        assert pod["nodeSelector"]["nvidia.com/gpu.product"].startswith("NVIDIA-A100")
        assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
    # Stable follows the serving manifest (adapters at run time); the base-change canary
    # names its checkpoint explicitly.
    manifest = json.loads(find(objects, "ConfigMap", "serving-manifest")["data"]["serving.json"])
    assert manifest["base_model"].endswith("/medgo-72b/base")
    assert manifest["adapters"][0]["name"].startswith("medgo-72b-")
    stable = find(objects, "Deployment", "inference")["spec"]["template"]["spec"]
    stable_env = {e["name"] for e in stable["containers"][0].get("env", [])}
    assert not stable_env & {"MEDGO_INFERENCE_BASE_MODEL", "MEDGO_INFERENCE_ADAPTERS"}
    container = find(objects, "Deployment", "inference-canary")["spec"]["template"]["spec"][
        "containers"
    ][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["MEDGO_INFERENCE_BASE_MODEL"].endswith("/medgo-72b/base")
    assert env["MEDGO_INFERENCE_ADAPTERS"].startswith("medgo-72b-")
    gateway = find(objects, "ConfigMap", "gateway-config")["data"]
    assert gateway["MEDGO_GATEWAY_CANARY_URL"] == "http://inference-canary:8001"
    assert find(objects, "HorizontalPodAutoscaler", "gateway")["spec"]["minReplicas"] == 3


def test_prod_a100_takes_feedback_dsn_and_secrets_from_ops(rendered: dict) -> None:
    objects = rendered["prod-a100"]
    container = find(objects, "Deployment", "feedback")["spec"]["template"]["spec"][
        "containers"
    ][0]
    dsn = next(e for e in container["env"] if e["name"] == "MEDGO_FEEDBACK_DATABASE_URL")
    assert dsn["valueFrom"]["secretKeyRef"] == {"name": "feedback-dsn", "key": "dsn"}
    assert not any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] ==
                   "feedback-db" for o in objects)
    # Applying the overlay must never overwrite the real secrets with templates.
    assert not [o for o in objects if o["kind"] == "Secret"]


def test_prod_images_are_pinned(rendered: dict) -> None:
    for obj in rendered["prod-a100"]:
        pod = obj.get("spec", {}).get("template", {}).get("spec", {})
        for container in pod.get("containers", []):
            repo, _, tag = container["image"].rpartition(":")
            assert repo and tag and tag not in {"latest", "dev"}, container["image"]


def test_canary_runs_the_same_pod_as_stable_but_for_its_checkpoint(rendered: dict) -> None:
    """The canary Deployment is a copy of the stable one: they may differ only in labels
    and in the checkpoint env, or a rollout would test more than the checkpoint."""
    objects = rendered["prod-a100"]
    stable = find(objects, "Deployment", "inference")["spec"]["template"]["spec"]
    canary = find(objects, "Deployment", "inference-canary")["spec"]["template"]["spec"]

    checkpoint = {"MEDGO_INFERENCE_BASE_MODEL", "MEDGO_INFERENCE_ADAPTERS"}

    def without_checkpoint(pod: dict) -> dict:
        return {**pod, "containers": [
            {**c, "env": sorted((e for e in c.get("env", []) if e["name"] not in checkpoint),
                                key=lambda e: e["name"])}
            for c in pod["containers"]
        ]}

    assert without_checkpoint(canary) == without_checkpoint(stable)
    assert checkpoint <= {e["name"] for e in canary["containers"][0]["env"]}
    # stable names no checkpoint: it follows the serving manifest
    assert not checkpoint & {e["name"] for e in stable["containers"][0].get("env", [])}


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_only_the_trainer_gets_api_access_and_only_for_its_jobs(
    rendered: dict, overlay: str
) -> None:
    objects = rendered[overlay]
    roles = [o for o in objects if o["kind"] in {"Role", "ClusterRole"}]
    assert [r["metadata"]["name"] for r in roles] == ["trainer-jobs"]
    rules = {
        (group, resource): tuple(sorted(rule["verbs"]))
        for rule in roles[0]["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
    }
    job_verbs = ("create", "delete", "get", "list", "watch")
    assert rules == {
        ("trainer.kubeflow.org", "trainjobs"): job_verbs,
        ("kubeflow.org", "pytorchjobs"): job_verbs,
        ("batch", "jobs"): job_verbs,
        ("", "configmaps"): ("create", "delete", "get"),
        ("", "pods"): ("get", "list", "watch"),
        ("", "pods/log"): ("get",),
    }
    binding = find(objects, "RoleBinding", "trainer-jobs")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "trainer", "namespace": "medgo"}
    ]
    for obj in objects:
        if obj["kind"] == "Deployment" and obj["metadata"]["name"] != "trainer":
            assert obj["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


def test_prod_edge_is_https_only_without_metrics_or_docs(rendered: dict) -> None:
    """The load balancer carries the gateway's TLS API port alone: /metrics lives on the
    port MEDGO_GATEWAY_METRICS_PORT names, which no LoadBalancer Service targets, and
    /docs (Swagger UI from a CDN) is off."""
    objects = rendered["prod-a100"]
    config = find(objects, "ConfigMap", "gateway-config")["data"]
    assert config["MEDGO_GATEWAY_API_DOCS"] == "false"
    pod = find(objects, "StatefulSet", "gateway")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["metrics"] == int(config["MEDGO_GATEWAY_METRICS_PORT"])
    assert ports["api"] == int(config["MEDGO_GATEWAY_PORT"])
    env = {e["name"]: e.get("value") for e in container["env"]}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for key in ("MEDGO_GATEWAY_TLS_CERTFILE", "MEDGO_GATEWAY_TLS_KEYFILE"):
        directory = env[key].rpartition("/")[0]
        assert volumes[mounts[directory]]["secret"]["secretName"] == (
            find(objects, "Certificate", "gateway-tls")["spec"]["secretName"])
    assert container["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    balancers = [o for o in objects if o["kind"] == "Service"
                 and o["spec"].get("type") == "LoadBalancer"]
    assert [b["metadata"]["name"] for b in balancers] == ["gateway"]
    assert balancers[0]["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "api"}]
