"""The trainer's Kubernetes executor and these manifests agree: the PyTorchJob that
`medgo-train submit --executor k8s` would create (rendered by the trainer's own pure
`build_job`, no API server) is well formed, its pod templates validate against the
Kubernetes schema, and everything it references - namespace, ServiceAccount, PVCs, the
A100 node label and taint - exists in the prod-a100 overlay, and the trainer's Role
allows creating each object it submits.

PyTorchJob is a custom resource that kubernetes-validate has no schema for: its outer
shape is checked with the small schema below, its pod templates with the core schema.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest

ROOT = Path(__file__).resolve().parents[2]
PYTORCHJOB_SCHEMA = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "apiVersion": {"const": "kubeflow.org/v1"},
        "kind": {"const": "PyTorchJob"},
        "metadata": {"type": "object", "required": ["name", "namespace"]},
        "spec": {
            "type": "object",
            "required": ["pytorchReplicaSpecs"],
            "properties": {
                "nprocPerNode": {"type": "string"},
                "runPolicy": {"type": "object"},
                "pytorchReplicaSpecs": {
                    "type": "object",
                    "required": ["Master"],
                    "additionalProperties": False,
                    "patternProperties": {
                        "^(Master|Worker)$": {
                            "type": "object",
                            "required": ["replicas", "template"],
                            "additionalProperties": False,
                            "properties": {
                                "replicas": {"type": "integer", "minimum": 1},
                                "restartPolicy": {
                                    "enum": ["Always", "OnFailure", "Never", "ExitCode"]
                                },
                                "template": {"type": "object"},
                            },
                        }
                    },
                },
            },
        },
    },
}


@pytest.fixture(scope="module")
def job_objects(rendered: dict) -> list[dict]:
    from medgo_trainer.executors import k8s
    from medgo_trainer.recipe import load_recipe, resolve_recipe_path

    config = next(o for o in rendered["prod-a100"]
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("trainer-"))
    cluster = k8s.ClusterSpec(
        image=config["data"]["MEDGO_TRAINER_K8S_IMAGE"],
        namespace=config["data"]["MEDGO_TRAINER_K8S_NAMESPACE"],
    )
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [], check_data=False)
    return k8s.build_job(recipe, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                         cluster=cluster)


def _templates(job: dict) -> list[dict]:
    return [spec["template"] for spec in job["spec"]["pytorchReplicaSpecs"].values()]


def test_the_pytorchjob_is_well_formed(job_objects: list[dict]) -> None:
    job = job_objects[-1]
    jsonschema.validate(job, PYTORCHJOB_SCHEMA)
    for obj in job_objects[:-1]:
        kubernetes_validate.validate(obj, "1.32.0", strict=True)
    for template in _templates(job):
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                        "metadata": {"name": "x"}, "template": template}
        kubernetes_validate.validate(pod_template, "1.32.0", strict=True)


def test_everything_the_job_uses_exists_in_prod(rendered: dict, job_objects: list[dict]) -> None:
    objects = rendered["prod-a100"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    gpu_pod = next(o for o in objects if o["kind"] == "Deployment"
                   and o["metadata"]["name"] == "inference")["spec"]["template"]["spec"]
    for obj in job_objects:
        assert obj["metadata"]["namespace"] == "medgo"
    for template in _templates(job_objects[-1]):
        pod = template["spec"]
        assert ("ServiceAccount", pod["serviceAccountName"]) in names
        for volume in pod["volumes"]:
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            if claim:
                assert ("PersistentVolumeClaim", claim) in names
        assert pod["nodeSelector"] == gpu_pod["nodeSelector"]
        assert pod["tolerations"] == gpu_pod["tolerations"]
        assert pod["containers"][0]["image"].endswith("/medgo/trainer:1.0.0")


def test_the_trainer_role_allows_submitting_it(rendered: dict, job_objects: list[dict]) -> None:
    role = next(o for o in rendered["prod-a100"] if o["kind"] == "Role")
    allowed = {
        (group, resource)
        for rule in role["rules"] if "create" in rule["verbs"]
        for group in rule["apiGroups"] for resource in rule["resources"]
    }
    for obj in job_objects:
        group = obj["apiVersion"].rpartition("/")[0]
        resource = {"PyTorchJob": "pytorchjobs", "ConfigMap": "configmaps"}[obj["kind"]]
        assert (group, resource) in allowed


def test_the_weekly_loop_submits_a_job_the_trainer_accepts(rendered: dict) -> None:
    """feedback-loop.sh ends in a `medgo-train submit` whose flags the trainer's real
    parser accepts and whose overrides are valid keys of the DPO recipe."""
    import shlex

    from medgo_trainer.cli import build_parser
    from medgo_trainer.recipe import load_recipe, resolve_recipe_path

    script = (ROOT / "deploy" / "k8s" / "components" / "feedback-loop" / "feedback-loop.sh")
    text = script.read_text(encoding="utf-8").replace("\\\n", " ")
    command = next(line for line in text.splitlines() if line.startswith("exec medgo-train"))
    command = command.replace("${week}", "2026-w48").replace("${out}", "/data/exports/2026-w48")
    argv = shlex.split(command)[2:]
    args = build_parser().parse_args(argv)
    assert (args.command, args.executor, args.stage) == ("submit", "k8s", "dpo")
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", args.name)
    recipe = load_recipe(resolve_recipe_path(args.recipe), args.overrides, check_data=False)
    assert recipe.data.train == ["/data/exports/2026-w48/dpo.jsonl"]
    cronjob = next(o for o in rendered["prod-a100"] if o["kind"] == "CronJob")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "trainer"
    assert {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]
            if "persistentVolumeClaim" in v} == {"medgo-data"}
