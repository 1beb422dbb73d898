"""Rollout mechanics of every overlay, as rules over the rendered objects:

- a Deployment with a startupProbe has a progressDeadlineSeconds above the probe's
  budget (model load), so `kubectl rollout status` waits for a loading pod;
- an HPA targets a rendered workload of its kind (the gateway is a StatefulSet), and
  a workload an HPA scales has no `replicas:` (the HPA alone owns them, or every
  `kubectl apply -k` would reset them);
- serving PriorityClasses outrank training ones; every pod names one;
- pods asking for GPUs run under runtimeClassName `nvidia` (the GPU operator's runtime);
- vLLM Deployments roll one pod at a time with nothing unavailable;
and in production: serving runs at least two replicas with a PodDisruptionBudget that
selects exactly that workload's pods (the inference budget not spanning the canary),
and every image is pinned by digest, the trainer's job images included.

`rollout_violations` is a plain function, so the last tests prove it names the object.
"""

from __future__ import annotations

import copy
import re

import pytest

SERVING = {"gateway", "inference", "inference-canary", "feedback"}
SERVING_KINDS = ("Deployment", "StatefulSet")  # the gateway: a spool claim per replica
HA_SERVING = {"gateway", "inference", "feedback"}  # the canary is one pod by design
DIGEST = re.compile(r"[a-z0-9.\-/]+@sha256:[0-9a-f]{64}")


def _pod(obj: dict) -> dict:
    spec = obj["spec"]
    if obj["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def _replicas(deployment: dict, hpas: dict[str, dict]) -> int:
    hpa = hpas.get(deployment["metadata"]["name"])
    return hpa["spec"]["minReplicas"] if hpa else deployment["spec"].get("replicas", 1)


def rollout_violations(objects: list[dict], *, production: bool) -> list[str]:
    out: list[str] = []
    by_kind: dict[str, list[dict]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = [o for kind in SERVING_KINDS for o in by_kind.get(kind, [])]
    hpas: dict[str, dict] = {}
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        ref = h["spec"]["scaleTargetRef"]
        if not any(d["kind"] == ref["kind"] and d["metadata"]["name"] == ref["name"]
                   for d in deployments):
            out.append(f"HorizontalPodAutoscaler/{h['metadata']['name']}: scales "
                       f"{ref['kind']}/{ref['name']}, which is not rendered")
        hpas[ref["name"]] = h
    priorities = {p["metadata"]["name"]: p["value"] for p in by_kind.get("PriorityClass", [])}
    pdbs = by_kind.get("PodDisruptionBudget", [])
    for d in deployments:
        name, spec = f"{d['kind']}/{d['metadata']['name']}", d["spec"]
        pod = _pod(d)
        for c in pod["spec"]["containers"]:
            probe = c.get("startupProbe")
            if probe:
                budget = probe.get("initialDelaySeconds", 0) + probe.get(
                    "periodSeconds", 10) * probe.get("failureThreshold", 3)
                deadline = spec.get("progressDeadlineSeconds", 600)
                if deadline <= budget:
                    out.append(f"{name}: progressDeadlineSeconds {deadline} must exceed the "
                               f"startupProbe budget {budget} s")
        if d["metadata"]["name"] in hpas and "replicas" in spec:
            out.append(f"{name}: sets replicas although HorizontalPodAutoscaler/"
                       f"{d['metadata']['name']} owns them")
        if d["kind"] == "Deployment" and pod["metadata"]["labels"].get("app") == "inference":
            strategy = spec.get("strategy", {})
            if strategy.get("rollingUpdate") != {"maxSurge": 1, "maxUnavailable": 0}:
                out.append(f"{name}: a base-model rollout needs RollingUpdate maxSurge 1, "
                           "maxUnavailable 0")
        if not production or d["metadata"]["name"] not in HA_SERVING:
            continue
        if (n := _replicas(d, hpas)) < 2:
            out.append(f"{name}: {n} replica(s), serving needs at least 2")
        labels = pod["metadata"]["labels"]
        covering = [p for p in pdbs if _matches(p["spec"]["selector"], labels)]
        if not covering:
            out.append(f"{name}: no PodDisruptionBudget selects its pods")
        for p in covering:
            others = [f"{o['kind']}/{o['metadata']['name']}" for o in deployments
                      if o is not d
                      and _matches(p["spec"]["selector"], _pod(o)["metadata"]["labels"])]
            if others:
                out.append(f"PodDisruptionBudget/{p['metadata']['name']}: spans {name} and "
                           f"{', '.join(others)}")
    for obj in (o for kind in (*SERVING_KINDS, "CronJob") for o in by_kind.get(kind, [])):
        name, pod = f"{obj['kind']}/{obj['metadata']['name']}", _pod(obj)["spec"]
        priority = pod.get("priorityClassName")
        if priority not in priorities:
            out.append(f"{name}: priorityClassName {priority} is not a rendered PriorityClass")
        gpus = any("nvidia.com/gpu" in c.get("resources", {}).get("limits", {})
                   for c in pod["containers"])
        if gpus and pod.get("runtimeClassName") != "nvidia":
            out.append(f"{name}: GPU pods need runtimeClassName nvidia")
        if production:
            for c in [*pod.get("initContainers", []), *pod["containers"]]:
                if not DIGEST.fullmatch(c["image"]):
                    out.append(f"{name}/{c['name']}: image {c['image']} is not pinned by digest")
    serving = [priorities.get(_pod(d)["spec"].get("priorityClassName"), 0)
               for d in deployments if d["metadata"]["name"] in SERVING]
    training = priorities.get("medgo-training")
    if training is None or not serving or min(serving) <= training:
        out.append("PriorityClass: serving must outrank medgo-training")
    return out


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_rollout_rules_hold(rendered: dict, overlay: str) -> None:
    assert rollout_violations(rendered[overlay], production=overlay == "prod-a100") == []


def test_prod_job_images_use_the_same_digests(rendered: dict) -> None:
    objects = rendered["prod-a100"]
    config = next(o for o in objects if o["kind"] == "ConfigMap"
                  and o["metadata"]["name"].startswith("trainer-config"))["data"]
    images = {c["image"] for o in objects if o["kind"] == "Deployment"
              for c in _pod(o)["spec"]["containers"]}
    for key in ("MEDGO_TRAINER_K8S_IMAGE", "MEDGO_TRAINER_K8S_INFERENCE_IMAGE"):
        assert config[key] in images, key


def test_training_never_preempts(rendered: dict) -> None:
    training = next(o for o in rendered["prod-a100"] if o["kind"] == "PriorityClass"
                    and o["metadata"]["name"] == "medgo-training")
    assert training["preemptionPolicy"] == "Never"


def _find(objects: list[dict], kind: str, name: str) -> dict:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


def test_each_broken_rule_names_the_object(rendered: dict) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    objects.remove(_find(objects, "PodDisruptionBudget", "feedback"))
    # The budget as it was: stable and canary together.
    _find(objects, "PodDisruptionBudget", "inference")["spec"]["selector"] = {
        "matchLabels": {"app": "inference"}}
    inference = _find(objects, "Deployment", "inference")
    inference["spec"]["replicas"] = 1
    del inference["spec"]["progressDeadlineSeconds"]
    inference["spec"]["strategy"]["rollingUpdate"] = {"maxSurge": 0, "maxUnavailable": 1}
    del inference["spec"]["template"]["spec"]["runtimeClassName"]
    _find(objects, "StatefulSet", "gateway")["spec"]["replicas"] = 3
    _find(objects, "HorizontalPodAutoscaler", "gateway")["spec"]["scaleTargetRef"][
        "kind"] = "Deployment"  # as it was before the gateway kept its spool on a claim
    trainer = _find(objects, "Deployment", "trainer")
    trainer["spec"]["template"]["spec"]["containers"][0]["image"] = "medgo/trainer:1.0.0"
    found = "\n".join(rollout_violations(objects, production=True))
    for expected in (
        "Deployment/inference: progressDeadlineSeconds 600 must exceed the startupProbe "
        "budget 1800 s",
        "Deployment/inference: 1 replica(s), serving needs at least 2",
        "Deployment/feedback: no PodDisruptionBudget selects its pods",
        "Deployment/inference: a base-model rollout needs RollingUpdate maxSurge 1, "
        "maxUnavailable 0",
        "Deployment/inference: GPU pods need runtimeClassName nvidia",
        "StatefulSet/gateway: sets replicas although HorizontalPodAutoscaler/gateway owns them",
        "HorizontalPodAutoscaler/gateway: scales Deployment/gateway, which is not rendered",
        "PodDisruptionBudget/inference: spans Deployment/inference and "
        "Deployment/inference-canary",
        "Deployment/trainer/trainer: image medgo/trainer:1.0.0 is not pinned by digest",
    ):
        assert expected in found
