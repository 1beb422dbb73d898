"""Nothing the gateway accepted is lost on a rollout, read from every rendered overlay.

The gateway is a StatefulSet so that each replica's spool (records and ratings not yet
delivered to feedback) lives on a PersistentVolumeClaim of its own and outlives the pod
(docs/operations.md, "Gateway releases and the spool"). `spool_violations` states what
that needs of the manifests:

- the directory of MEDGO_GATEWAY_SPOOL_PATH is mounted from a volumeClaimTemplate
  (ReadWriteOnce, larger than MEDGO_GATEWAY_SPOOL_MAX_BYTES), never an emptyDir, and the
  claims are retained when a replica is scaled away or the StatefulSet deleted;
- terminationGracePeriodSeconds covers the preStop pause, uvicorn's wait for requests
  in progress and the spool drain (MEDGO_GATEWAY_DRAIN_TIMEOUT_S), so SIGKILL never
  interrupts the drain;
- the HPA scales this StatefulSet (not a Deployment of the same name, which would no
  longer exist), the PodDisruptionBudget selects its pods and no other workload's, the
  governing Service is headless and selects them, and so do the Services `gateway` and
  `gateway-metrics` and every NetworkPolicy written for `app: gateway`.

That a process on the same spool file delivers what a killed one left, and that SIGTERM
drains before exit, is proven with real processes in services/gateway/tests:
test_recorder.py::test_spool_survives_a_gateway_crash (records of real chats),
test_spool.py::test_a_killed_gateways_spool_is_delivered_by_the_next_process (a
queued rating) and test_spool.py::test_a_terminated_gateway_hands_its_spool_to_feedback.
"""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath

import pytest
from medgo_gateway.cli import GRACEFUL_SHUTDOWN_S
from medgo_gateway.settings import GatewaySettings

_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"([0-9]+)([KMGT]i)?", quantity).groups()
    return int(number) * _UNITS[unit or ""]


def _setting(config: dict[str, str], name: str) -> str:
    """A gateway setting as the pods get it: the ConfigMap, else the settings default."""
    env = f"MEDGO_GATEWAY_{name.upper()}"
    return config.get(env, str(GatewaySettings.model_fields[name].get_default(
        call_default_factory=True)))


def _selects(selector: dict, labels: dict) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def spool_violations(objects: list[dict]) -> list[str]:
    """Every broken rule of the module docstring, one message each."""
    out: list[str] = []
    gateways = [o for o in objects if o["metadata"]["name"] == "gateway"
                and o["kind"] in {"Deployment", "StatefulSet"}]
    if [g["kind"] for g in gateways] != ["StatefulSet"]:
        return [f"gateway: expected one StatefulSet, found {[g['kind'] for g in gateways]}"]
    (sts,) = gateways
    spec, pod = sts["spec"], sts["spec"]["template"]["spec"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    config = next(o["data"] for o in objects if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].startswith("gateway-config"))
    container = next(c for c in pod["containers"] if c["name"] == "gateway")

    # -- the spool is on a claim of this replica
    spool_dir = PurePosixPath(_setting(config, "spool_path")).parent
    mount = next((m for m in container.get("volumeMounts", [])
                  if PurePosixPath(m["mountPath"]) == spool_dir), None)
    templates = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates", [])}
    if mount is None:
        out.append(f"StatefulSet/gateway: nothing is mounted at the spool's directory "
                   f"{spool_dir}")
    elif mount["name"] not in templates:
        kind = next((k for v in pod.get("volumes", []) if v["name"] == mount["name"]
                     for k in v if k != "name"), "no volume")
        out.append(f"StatefulSet/gateway: the spool ({spool_dir}) is on {kind} "
                   f"{mount['name']}, not on a volumeClaimTemplate: it dies with the pod")
    else:
        claim = templates[mount["name"]]["spec"]
        if claim.get("accessModes") != ["ReadWriteOnce"]:
            out.append(f"StatefulSet/gateway: spool claim access {claim.get('accessModes')}, "
                       "want [ReadWriteOnce] (one writer per claim)")
        size = _bytes(claim["resources"]["requests"]["storage"])
        bound = int(_setting(config, "spool_max_bytes"))
        if size <= bound:
            out.append(f"StatefulSet/gateway: spool claim of {size} bytes does not hold "
                       f"MEDGO_GATEWAY_SPOOL_MAX_BYTES {bound} plus SQLite's overhead")
    retention = spec.get("persistentVolumeClaimRetentionPolicy", {})
    for when in ("whenScaled", "whenDeleted"):
        if retention.get(when, "Retain") != "Retain":
            out.append(f"StatefulSet/gateway: persistentVolumeClaimRetentionPolicy.{when} "
                       f"{retention[when]} deletes a spool that may still hold records")

    # -- SIGTERM has time to drain
    pre_stop = container.get("lifecycle", {}).get("preStop", {})
    pause = pre_stop.get("sleep", {}).get("seconds", 0)
    drain = float(_setting(config, "drain_timeout_s"))
    needed = pause + GRACEFUL_SHUTDOWN_S + drain
    grace = pod.get("terminationGracePeriodSeconds", 30)
    if grace < needed:
        out.append(f"StatefulSet/gateway: terminationGracePeriodSeconds {grace} < preStop "
                   f"{pause} + requests {GRACEFUL_SHUTDOWN_S} + spool drain {drain:g} s")

    # -- what points at the pods still does
    for hpa in (o for o in objects if o["kind"] == "HorizontalPodAutoscaler"
                and o["metadata"]["name"] == "gateway"):
        ref = hpa["spec"]["scaleTargetRef"]
        if (ref["apiVersion"], ref["kind"], ref["name"]) != ("apps/v1", "StatefulSet", "gateway"):
            out.append(f"HorizontalPodAutoscaler/gateway: scales {ref['kind']}/{ref['name']}, "
                       "not StatefulSet/gateway")
    pdbs = [p for p in objects if p["kind"] == "PodDisruptionBudget"
            and _selects(p["spec"]["selector"].get("matchLabels", {}), labels)]
    if (budgets := [p["metadata"]["name"] for p in pdbs]) != ["gateway"]:
        out.append(f"StatefulSet/gateway: PodDisruptionBudgets {budgets} select its pods, "
                   "want exactly [gateway]")
    workloads = [o for o in objects if o["kind"] in {"Deployment", "StatefulSet", "DaemonSet"}
                 and o is not sts]
    for p in pdbs:
        for w in workloads:
            if _selects(p["spec"]["selector"].get("matchLabels", {}),
                        w["spec"]["template"]["metadata"]["labels"]):
                out.append(f"PodDisruptionBudget/{p['metadata']['name']}: also selects "
                           f"{w['kind']}/{w['metadata']['name']}")
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    governing = services.get(spec.get("serviceName", ""))
    if governing is None or governing["spec"].get("clusterIP") != "None":
        out.append(f"StatefulSet/gateway: serviceName {spec.get('serviceName')} is not a "
                   "rendered headless Service")
    for name in ("gateway", "gateway-metrics", spec.get("serviceName", "")):
        if name in services and not _selects(services[name]["spec"].get("selector", {}),
                                             labels):
            out.append(f"Service/{name}: does not select the gateway pods")
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        selector = policy["spec"]["podSelector"].get("matchLabels", {})
        if selector.get("app") == "gateway" and not _selects(selector, labels):
            out.append(f"NetworkPolicy/{policy['metadata']['name']}: written for the gateway "
                       "but does not select its pods")
    return out


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_the_spool_survives_the_pod_in_every_overlay(rendered: dict, overlay: str) -> None:
    assert spool_violations(rendered[overlay]) == []


def test_prod_spool_claims_are_block_storage(rendered: dict) -> None:
    """One writer per claim: the hospital's ReadWriteOnce class, as the trainer's own."""
    objects = rendered["prod-a100"]
    sts = next(o for o in objects if o["kind"] == "StatefulSet")
    (template,) = sts["spec"]["volumeClaimTemplates"]
    trainer = next(o for o in objects if o["kind"] == "PersistentVolumeClaim"
                   and o["metadata"]["name"] == "trainer-jobs")
    assert template["spec"]["storageClassName"] == trainer["spec"]["storageClassName"]


def _gateway(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] == "StatefulSet"
                and o["metadata"]["name"] == "gateway")


def test_each_broken_rule_names_the_object(rendered: dict) -> None:
    """Bad input: the spool back on an emptyDir, a grace period that cuts the drain, a
    claim deleted on scale-down, an HPA on the old kind, a budget spanning two workloads."""
    objects = copy.deepcopy(rendered["prod-a100"])
    sts = _gateway(objects)
    pod = sts["spec"]["template"]["spec"]
    pod["terminationGracePeriodSeconds"] = 25
    pod["volumes"].append({"name": "spool", "emptyDir": {"sizeLimit": "1Gi"}})
    del sts["spec"]["volumeClaimTemplates"]
    sts["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] = "Delete"
    next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")["spec"][
        "scaleTargetRef"]["kind"] = "Deployment"
    # The Deployment of before, left running beside the StatefulSet.
    objects.append({"kind": "Deployment", "metadata": {"name": "gateway-legacy"},
                    "spec": {"template": copy.deepcopy(sts["spec"]["template"])}})
    found = "\n".join(spool_violations(objects))
    for expected in (
        "StatefulSet/gateway: the spool (/var/lib/medgo/gateway) is on emptyDir spool, not "
        "on a volumeClaimTemplate: it dies with the pod",
        "StatefulSet/gateway: persistentVolumeClaimRetentionPolicy.whenScaled Delete",
        f"StatefulSet/gateway: terminationGracePeriodSeconds 25 < preStop 5 + requests "
        f"{GRACEFUL_SHUTDOWN_S} + spool drain 15 s",
        "HorizontalPodAutoscaler/gateway: scales Deployment/gateway, not StatefulSet/gateway",
        "PodDisruptionBudget/gateway: also selects Deployment/gateway-legacy",
    ):
        assert expected in found


def test_a_small_claim_a_lost_selector_and_a_deployment_are_named(rendered: dict) -> None:
    objects = copy.deepcopy(rendered["local-cpu"])
    sts = _gateway(objects)
    sts["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] = "256Mi"
    sts["spec"]["template"]["metadata"]["labels"] = {"app": "gateway-v2"}
    found = "\n".join(spool_violations(objects))
    assert ("spool claim of 268435456 bytes does not hold MEDGO_GATEWAY_SPOOL_MAX_BYTES "
            "536870912") in found
    for name in ("Service/gateway:", "Service/gateway-metrics:", "Service/gateway-pods:"):
        assert f"{name} does not select the gateway pods" in found
    assert "NetworkPolicy/allow-gateway-egress: written for the gateway" in found
    sts["kind"] = "Deployment"  # the spool back on a Deployment
    assert spool_violations(objects) == [
        "gateway: expected one StatefulSet, found ['Deployment']"]
