"""The trainer's Kubernetes executor and these manifests agree: the PyTorchJob that
`medgo-train submit --executor k8s` would create (rendered by the trainer's own pure
`build_job`, no API server) is well formed, its pod templates validate against the
Kubernetes schema, and everything it references - namespace, ServiceAccount, PVCs, the
A100 node label and taint - exists in the prod-a100 overlay, and the trainer's Role
allows creating each object it submits. The same for the weekly feedback loop: the
CronJob's command line parses, its pod sees the model store where the trainer's
settings say, and the evaluation Job it would submit (vLLM sidecar + evaluator) is
valid and uses only what prod has.

Every object is validated strictly (k8s_schemas.py): the PyTorchJob against its CRD
schema from the shared schema directory, pod templates and the rest against the core
schemas.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRAINER_IMAGE = re.compile(r".*/medgo/trainer@sha256:[0-9a-f]{64}")


@pytest.fixture(scope="module")
def job_objects(rendered: dict) -> list[dict]:
    from medgo_trainer.training.executors import k8s
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path

    config = next(o for o in rendered["prod-a100"]
                  if o["kind"] == "ConfigMap" and o["metadata"]["name"].startswith("trainer-"))
    cluster = k8s.ClusterSpec(
        image=config["data"]["MEDGO_TRAINER_K8S_IMAGE"],
        namespace=config["data"]["MEDGO_TRAINER_K8S_NAMESPACE"],
        job_api="pytorchjob",  # the TrainJob default: test_training_runtime.py
    )
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [], check_data=False)
    return k8s.build_job(recipe, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                         cluster=cluster)


def _templates(job: dict) -> list[dict]:
    return [spec["template"] for spec in job["spec"]["pytorchReplicaSpecs"].values()]


def test_the_pytorchjob_is_well_formed(job_objects: list[dict], k8s_schemas: object) -> None:
    job = job_objects[-1]
    assert job["kind"] == "PyTorchJob"
    errors = [e for obj in job_objects for e in k8s_schemas.errors(obj)]
    for template in _templates(job):
        pod_template = {"apiVersion": "v1", "kind": "PodTemplate",
                        "metadata": {"name": "x"}, "template": template}
        errors += k8s_schemas.errors(pod_template)
    assert not errors, "\n".join(errors)


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
        assert TRAINER_IMAGE.fullmatch(pod["containers"][0]["image"])


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


def _cronjob_pod(rendered: dict) -> dict:
    cronjob = next(o for o in rendered["prod-a100"] if o["kind"] == "CronJob"
                   and o["metadata"]["name"] == "feedback-loop")
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def _config(rendered: dict, prefix: str) -> dict[str, str]:
    return next(o for o in rendered["prod-a100"] if o["kind"] == "ConfigMap"
                and o["metadata"]["name"].startswith(prefix))["data"]


def test_the_weekly_loop_runs_the_whole_loop_on_kubernetes(rendered: dict) -> None:
    """The CronJob runs feedback-loop.sh, which execs `medgo-train loop --executor k8s`
    with the CronJob's args: the trainer's real parser accepts them, the recipe loads,
    and the waits fit in the CronJob's deadline."""
    import shlex

    from medgo_trainer.cli import build_parser
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path

    script = (ROOT / "deploy" / "k8s" / "components" / "feedback-loop" / "feedback-loop.sh")
    text = script.read_text(encoding="utf-8").replace("\\\n", " ")
    command = next(line for line in text.splitlines() if line.startswith("exec medgo-train"))
    command = re.sub(r'"\$\(date [^)]*\)"', "2026-11-23T02:00:00Z", command)
    cronjob = next(o for o in rendered["prod-a100"] if o["kind"] == "CronJob"
                   and o["metadata"]["name"] == "feedback-loop")
    pod = _cronjob_pod(rendered)
    (container,) = pod["containers"]
    assert container["command"] == ["sh", "/etc/medgo/loop/feedback-loop.sh"]
    argv = shlex.split(command.replace('"$@"', ""))[2:] + container["args"]
    args = build_parser().parse_args(argv)
    assert (args.command, args.executor, args.loop_step) == ("loop", "k8s", None)
    assert args.since == "2026-11-23T02:00:00Z" and args.skip_if_few_pairs
    recipe = load_recipe(resolve_recipe_path(args.recipe), args.overrides, check_data=False)
    assert recipe.stage == "dpo"
    deadline = cronjob["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"]
    assert args.train_timeout + args.eval_timeout + 3600 < deadline
    assert args.serve_timeout < args.eval_timeout
    assert pod["serviceAccountName"] == "trainer"


def test_the_loop_pod_sees_the_model_store_where_the_trainer_settings_say(
    rendered: dict,
) -> None:
    """Registry paths written by the CronJob pod must hold in the evaluation pod and in
    inference: all mount the model store at MEDGO_TRAINER_MODEL_DIR."""
    pod = _cronjob_pod(rendered)
    config = _config(rendered, "trainer-")
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert claims["models"]["claimName"] == "medgo-checkpoints"
    assert mounts["models"]["mountPath"] == config["MEDGO_TRAINER_MODEL_DIR"]
    assert not mounts["models"].get("readOnly")  # registry, exports, serving.json
    assert claims["data"] == {"claimName": "medgo-data", "readOnly": True}
    assert mounts["data"]["mountPath"] == config["MEDGO_TRAINER_DATA_DIR"]
    inference = next(o for o in rendered["prod-a100"] if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == "inference")["spec"]["template"]["spec"]
    served = {m["name"]: m["mountPath"] for m in inference["containers"][0]["volumeMounts"]}
    assert served["models"] == config["MEDGO_TRAINER_MODEL_DIR"]


@pytest.fixture(scope="module")
def eval_job(rendered: dict, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The evaluation Job the weekly loop would submit, with prod's trainer settings."""
    from medgo_trainer.training.executors import k8s
    from medgo_trainer.training.executors.k8s_loop import build_eval_job

    config = _config(rendered, "trainer-")
    cluster = k8s.ClusterSpec(image=config["MEDGO_TRAINER_K8S_IMAGE"],
                              namespace=config["MEDGO_TRAINER_K8S_NAMESPACE"])
    return build_eval_job(
        "medgo-72b-dpo-1a2b3c4d-eval", cluster,
        inference_image=config["MEDGO_TRAINER_K8S_INFERENCE_IMAGE"],
        serving={"MEDGO_INFERENCE_BASE_MODEL": "/var/lib/medgo/models/medgo-72b/base"},
        command=["medgo-train", "loop", "evaluate"],
        model_dir=Path(config["MEDGO_TRAINER_MODEL_DIR"]),
        data_dir=Path(config["MEDGO_TRAINER_DATA_DIR"]), serve_timeout_s=1800,
        timeout_s=14400)


def test_the_evaluation_job_is_valid_and_uses_what_prod_has(
    rendered: dict, eval_job: dict, k8s_schemas: object
) -> None:
    assert k8s_schemas.errors(eval_job) == []
    objects = rendered["prod-a100"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    pod = eval_job["spec"]["template"]["spec"]
    assert eval_job["metadata"]["namespace"] == "medgo"
    assert ("ServiceAccount", pod["serviceAccountName"]) in names
    for volume in pod["volumes"]:
        claim = volume.get("persistentVolumeClaim", {}).get("claimName")
        if claim:
            assert ("PersistentVolumeClaim", claim) in names
    (sidecar,) = pod["initContainers"]
    assert ("ConfigMap", sidecar["envFrom"][0]["configMapRef"]["name"]) in names
    inference = next(o for o in objects if o["kind"] == "Deployment"
                     and o["metadata"]["name"] == "inference")["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == inference["nodeSelector"]
    assert pod["tolerations"] == inference["tolerations"]
    assert sidecar["image"] == inference["containers"][0]["image"]
    assert sidecar["resources"]["limits"]["nvidia.com/gpu"] == (
        inference["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    assert TRAINER_IMAGE.fullmatch(pod["containers"][0]["image"])


def test_the_trainer_role_allows_running_and_following_the_loops_jobs(
    rendered: dict, eval_job: dict
) -> None:
    role = next(o for o in rendered["prod-a100"] if o["kind"] == "Role")
    for group, resource in (("batch", "jobs"), ("kubeflow.org", "pytorchjobs")):
        verbs = {verb for rule in role["rules"] if group in rule["apiGroups"]
                 and resource in rule["resources"] for verb in rule["verbs"]}
        assert {"create", "get"} <= verbs, (group, resource)
    assert eval_job["apiVersion"] == "batch/v1"


def test_prod_inference_serves_every_adapter_the_loop_promotes(rendered: dict) -> None:
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path

    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), check_data=False)
    assert recipe.max_serving_rank is not None
    assert int(_config(rendered, "inference-")["MEDGO_INFERENCE_MAX_LORA_RANK"]) >= (
        recipe.max_serving_rank)


def test_the_jobs_pods_are_what_the_network_policies_expect(
    rendered: dict, job_objects: list[dict], eval_job: dict, netpol
) -> None:
    """The run-time pods test_reachability.py places by label are the ones the executor
    builds: prod's policies let master and workers rendezvous, keep the gateway out,
    and keep training pods away from the evaluation pod's vLLM."""
    import ipaddress

    objects = rendered["prod-a100"]
    job = job_objects[-1]
    master, worker = (
        netpol.Pod(f"PyTorchJob/{job['metadata']['name']} {role}", "medgo",
                   spec["template"]["metadata"]["labels"])
        for role, spec in job["spec"]["pytorchReplicaSpecs"].items())
    (evaluation,) = netpol.pods_of([eval_job])
    gateway = next(p for p in netpol.pods_of(objects) if p.name == "StatefulSet/gateway")
    network = next(o for o in objects if o["kind"] == "ConfigMap"
                   and o["metadata"]["name"] == "cluster-network")["data"]
    cluster = netpol.Cluster(netpol.network_policies(objects),
                             [master, worker, evaluation, gateway],
                             pod_network=ipaddress.ip_network(network["pod-cidr"]))
    assert cluster.allows(master, worker, 29500) and cluster.allows(worker, master, 29500)
    assert not cluster.allows(gateway, master, 29500)
    assert not cluster.allows(master, evaluation, 8001)
