"""The invariants every rendered overlay must keep, checked object by object:

- every long-running container has readiness and liveness probes (inference also a
  startupProbe), CPU and memory requests and limits, and runs hardened: non-root with a
  fixed UID, read-only root filesystem, all capabilities dropped, no privilege
  escalation, seccomp RuntimeDefault (init containers: all but probes);
- every object is labelled part-of medgo and every namespaced one lives in namespace
  medgo (objects added by components escape the base's transformers unless the overlay
  repeats them);
- every namespace holding objects has a default-deny NetworkPolicy;
- no Service but the gateway's is exposed outside the cluster;
- every ConfigMap a pod uses exists, and every Secret too unless ops provide it or a
  rendered cert-manager Certificate issues it;
- every environment variable set is a real settings field (MEDGO_*) or one of the few
  third-party variables listed below.

`policy_violations` is a plain function so the last test can prove it does catch each
kind of violation.
"""

from __future__ import annotations

import copy
from types import ModuleType

import pytest

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
# Variables read by third-party code or images, not by a MedGo settings class.
THIRD_PARTY_ENV = {
    "HOME", "PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE",
    "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "VLLM_NO_USAGE_STATS",
    "TORCH_CUDA_ARCH_LIST", "MAX_JOBS", "DS_BUILD_OPS", "DS_BUILD_FUSED_ADAM",
    "DS_BUILD_CPU_ADAM",
    "POSTGRES_USER", "POSTGRES_DB", "POSTGRES_PASSWORD_FILE", "postgres_password",
}
# Secrets that prod-a100 leaves to ops (docs/operations.md) instead of rendering.
OPS_SECRETS = {"service-tokens", "gateway-api-keys", "feedback-dsn", "inference-api-key",
               "trainer-registry-dsn"}
# Kinds without a namespace.
CLUSTER_SCOPED = {"Namespace", "PriorityClass", "ClusterRole", "ClusterRoleBinding",
                  "ClusterQueue", "ResourceFlavor", "ClusterTrainingRuntime"}


def _pod_spec(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def _container_violations(where: str, c: dict, pod: dict, *, init: bool) -> list[str]:
    out = []
    long_running = not init
    if long_running and not ({"readinessProbe", "livenessProbe"} <= c.keys()):
        out.append(f"{where}: readiness and liveness probes required")
    resources = c.get("resources", {})
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= resources.get(kind, {}).keys():
            out.append(f"{where}: cpu and memory {kind} required")
    sc, psc = c.get("securityContext", {}), pod.get("securityContext", {})
    if not (sc.get("runAsNonRoot") or psc.get("runAsNonRoot")):
        out.append(f"{where}: runAsNonRoot required")
    uid = sc.get("runAsUser", psc.get("runAsUser"))
    if not isinstance(uid, int) or uid == 0:
        out.append(f"{where}: a fixed non-zero runAsUser required")
    if sc.get("readOnlyRootFilesystem") is not True:
        out.append(f"{where}: readOnlyRootFilesystem required")
    if sc.get("allowPrivilegeEscalation") is not False:
        out.append(f"{where}: allowPrivilegeEscalation: false required")
    if "ALL" not in sc.get("capabilities", {}).get("drop", []):
        out.append(f"{where}: capabilities drop ALL required")
    seccomp = sc.get("seccompProfile", psc.get("seccompProfile", {}))
    if seccomp.get("type") != "RuntimeDefault":
        out.append(f"{where}: seccomp RuntimeDefault required")
    return out


def policy_violations(objects: list[dict], settings_env: set[str]) -> list[str]:
    out: list[str] = []
    configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objects
                  if o["kind"] == "ConfigMap"}
    secrets = {o["metadata"]["name"] for o in objects if o["kind"] == "Secret"} | OPS_SECRETS
    secrets |= {o["spec"]["secretName"] for o in objects if o["kind"] == "Certificate"}
    env_names: set[str] = set()
    for obj in objects:
        name = f"{obj['kind']}/{obj['metadata']['name']}"
        labels = obj["metadata"].get("labels", {})
        if labels.get("app.kubernetes.io/part-of") != "medgo":
            out.append(f"{name}: label app.kubernetes.io/part-of=medgo missing")
        if obj["kind"] not in CLUSTER_SCOPED and obj["metadata"].get("namespace") != "medgo":
            out.append(f"{name}: not in namespace medgo")
        if obj["kind"] == "Service" and obj["metadata"]["name"] != "gateway":
            if obj["spec"].get("type", "ClusterIP") in {"LoadBalancer", "NodePort"}:
                out.append(f"{name}: only the gateway may be exposed outside the cluster")
            if obj["spec"].get("externalIPs"):
                out.append(f"{name}: only the gateway may have externalIPs")
        if obj["kind"] not in WORKLOADS:
            continue
        pod = _pod_spec(obj)
        batch = obj["kind"] in {"Job", "CronJob"}
        for c in pod.get("initContainers", []):
            out += _container_violations(f"{name}/{c['name']}", c, pod, init=True)
        for c in pod["containers"]:
            out += _container_violations(f"{name}/{c['name']}", c, pod, init=batch)
            if obj["metadata"]["labels"].get("app") == "inference" and "startupProbe" not in c:
                out.append(f"{name}/{c['name']}: inference needs a startupProbe")
        for c in pod.get("initContainers", []) + pod["containers"]:
            for source in c.get("envFrom", []):
                ref = source.get("configMapRef", {}).get("name")
                if ref and ref not in configmaps:
                    out.append(f"{name}: ConfigMap {ref} does not exist")
                env_names.update(configmaps.get(ref, {}))
            for item in c.get("env", []):
                env_names.add(item["name"])
                ref = item.get("valueFrom", {}).get("secretKeyRef", {}).get("name")
                if ref and ref not in secrets:
                    out.append(f"{name}: Secret {ref} does not exist")
        for volume in pod.get("volumes", []):
            ref = volume.get("secret", {}).get("secretName")
            if ref and ref not in secrets:
                out.append(f"{name}: Secret {ref} does not exist")
    out += _env_violations("manifests", env_names, settings_env)
    namespaces = {o["metadata"].get("namespace") for o in objects} - {None}
    for ns in sorted(namespaces):
        if not any(_is_default_deny(o) and o["metadata"].get("namespace") == ns
                   for o in objects):
            out.append(f"namespace {ns}: no default-deny NetworkPolicy")
    return out


def _is_default_deny(obj: dict) -> bool:
    spec = obj.get("spec", {})
    return (
        obj["kind"] == "NetworkPolicy"
        and spec.get("podSelector") == {}
        and set(spec.get("policyTypes", [])) == {"Ingress", "Egress"}
        and not spec.get("ingress")
        and not spec.get("egress")
    )


def _env_violations(where: str, names: set[str], settings_env: set[str]) -> list[str]:
    known = settings_env | THIRD_PARTY_ENV
    unknown = sorted(n for n in names if n not in known)
    return [f"{where}: {n} is not a field of any settings class" for n in unknown]


@pytest.fixture(scope="session")
def settings_env(config_table: ModuleType) -> set[str]:
    return config_table.settings_env_names()


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_overlay_keeps_every_invariant(
    rendered: dict[str, list[dict]], settings_env: set[str], overlay: str
) -> None:
    assert policy_violations(rendered[overlay], settings_env) == []


def test_compose_and_images_set_only_real_settings(
    compose: dict, settings_env: set[str], config_table: ModuleType
) -> None:
    names = config_table.compose_env_names(compose)
    for path in config_table.DOCKERFILES:
        names |= config_table.dockerfile_env_names(config_table.ROOT / path)
    names.discard("api_keys.json")  # a file secret (MEDGO_GATEWAY_API_KEYS_FILE points at it)
    assert _env_violations("compose/images", names, settings_env) == []


def test_the_policy_catches_each_kind_of_violation(
    rendered: dict[str, list[dict]], settings_env: set[str]
) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    feedback = next(o for o in objects if o["kind"] == "Deployment"
                    and o["metadata"]["name"] == "feedback")
    container = _pod_spec(feedback)["containers"][0]
    del container["livenessProbe"]
    del container["resources"]["limits"]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    container["env"].append({"name": "MEDGO_FEEDBACK_DATABSE_URL", "value": "typo"})
    container["envFrom"].append({"configMapRef": {"name": "missing-config"}})
    inference = next(o for o in objects if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == "inference")
    del _pod_spec(inference)["containers"][0]["startupProbe"]
    service = next(o for o in objects if o["kind"] == "Service"
                   and o["metadata"]["name"] == "feedback")
    service["spec"]["type"] = "NodePort"
    objects = [o for o in objects
               if not (o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "default-deny")]
    del next(o for o in objects if o["kind"] == "Role")["metadata"]["namespace"]

    found = "\n".join(policy_violations(objects, settings_env))
    for expected in (
        "Deployment/feedback/feedback: readiness and liveness probes required",
        "Deployment/feedback/feedback: cpu and memory limits required",
        "Deployment/feedback/feedback: readOnlyRootFilesystem required",
        "MEDGO_FEEDBACK_DATABSE_URL is not a field of any settings class",
        "Deployment/feedback: ConfigMap missing-config does not exist",
        "Deployment/inference/inference: inference needs a startupProbe",
        "Service/feedback: only the gateway may be exposed outside the cluster",
        "namespace medgo: no default-deny NetworkPolicy",
        "Role/trainer-jobs: not in namespace medgo",
    ):
        assert expected in found
