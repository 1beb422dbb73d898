"""Training jobs on Kubeflow Trainer v2 and Kueue: the runtime, the queues and the
InfiniBand knob that prod renders validate strictly against their CRD schemas
(../shared/k8s-schemas, unknown fields rejected), fit together (a LocalQueue on a
ClusterQueue on a flavor of the GPU nodes), and so do the jobs the trainer's executor
builds from prod's own settings: the TrainJob (default) and the PyTorchJob fallback
validate, reference what prod ships, carry the queue label, and ask only for what the
queue covers.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPONENTS = ROOT / "deploy" / "k8s" / "components"


def _one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    generated = re.compile(rf"{re.escape(name or '')}-[a-z0-9]{{10}}")  # hashed ConfigMaps
    found = [o for o in objects if o["kind"] == kind
             and (name is None or o["metadata"]["name"] == name
                  or generated.fullmatch(o["metadata"]["name"]))]
    assert len(found) == 1, f"expected one {kind} {name or ''} in prod, found {len(found)}"
    return found[0]


@pytest.fixture(scope="module")
def prod(rendered: dict[str, list[dict]]) -> list[dict]:
    return rendered["prod-a100"]


@pytest.fixture(scope="module")
def prod_infiniband(kubectl: str, tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    """prod-a100 with the infiniband component turned on, as ops would."""
    overlay = tmp_path_factory.mktemp("prod-infiniband")
    (overlay / "kustomization.yaml").write_text(yaml.safe_dump({
        "apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
        # kustomize takes relative paths only
        "resources": [os.path.relpath(ROOT / "deploy" / "k8s" / "overlays" / "prod-a100",
                                      overlay)],
        "components": [os.path.relpath(COMPONENTS / "infiniband", overlay)],
    }))
    proc = subprocess.run([kubectl, "kustomize", str(overlay)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _training_kinds(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["apiVersion"].split("/")[0]
            in {"trainer.kubeflow.org", "kueue.x-k8s.io"}]


@pytest.mark.parametrize("variant", ["prod", "prod_infiniband"])
def test_runtime_and_queues_validate_against_their_crds(request, variant: str,
                                                        k8s_schemas) -> None:
    """(Every object prod renders is validated by test_kustomize.py; the infiniband
    variant only here.)"""
    objects = _training_kinds(request.getfixturevalue(variant))
    assert sorted(o["kind"] for o in objects) == [
        "ClusterQueue", "LocalQueue", "ResourceFlavor", "TrainingRuntime"]
    assert [e for obj in objects for e in k8s_schemas.errors(obj)] == []


def test_strict_validation_rejects_a_misspelt_field(prod: list[dict], k8s_schemas) -> None:
    """Bad input: what the API server would silently prune is an error naming the path."""
    runtime = _one(prod, "TrainingRuntime")
    broken = yaml.safe_load(yaml.safe_dump(runtime))
    broken["spec"]["mlPolicy"]["torch"]["numProcsPerNode"] = 8
    (error,) = k8s_schemas.errors(broken)
    assert error.startswith("TrainingRuntime/medgo-torch-deepspeed: spec.mlPolicy.torch: ")
    assert "'numProcsPerNode' was unexpected" in error


def test_the_local_queue_leads_to_the_gpu_nodes(prod: list[dict]) -> None:
    local = _one(prod, "LocalQueue")
    cluster = _one(prod, "ClusterQueue", local["spec"]["clusterQueue"])
    namespace = _one(prod, "Namespace")
    assert local["metadata"]["namespace"] == namespace["metadata"]["name"]
    selector = cluster["spec"]["namespaceSelector"]["matchLabels"]
    assert selector == {"kubernetes.io/metadata.name": namespace["metadata"]["name"]}
    inference = _one(prod, "Deployment", "inference")["spec"]["template"]["spec"]
    for group in cluster["spec"]["resourceGroups"]:
        for flavor in group["flavors"]:
            spec = _one(prod, "ResourceFlavor", flavor["name"])["spec"]
            assert spec["nodeLabels"] == inference["nodeSelector"]
            for taint in spec["nodeTaints"]:
                assert any(t["key"] == taint["key"] and t["effect"] == taint["effect"]
                           for t in inference["tolerations"])
            assert {r["name"] for r in flavor["resources"]} == set(group["coveredResources"])


def test_the_runtime_is_the_torch_shape_trainer_v2_expects(prod: list[dict]) -> None:
    runtime = _one(prod, "TrainingRuntime")
    assert runtime["metadata"]["namespace"] == "medgo"
    assert "torch" in runtime["spec"]["mlPolicy"]
    (job,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    assert job["name"] == "node"
    assert job["template"]["metadata"]["labels"][
        "trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    pod = job["template"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["name"] == "node"
    trainer = _one(prod, "Deployment", "trainer")["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == trainer["image"]  # pinned by the same images: entry
    nccl = container["envFrom"][0]["configMapRef"]["name"]
    assert _one(prod, "ConfigMap", nccl)["metadata"]["name"] == nccl  # not hashed: jobs name it
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_infiniband_switches_nccl_and_lets_kueue_count_the_device(
    prod: list[dict], prod_infiniband: list[dict]
) -> None:
    nccl = _one(prod_infiniband, "ConfigMap", "training-nccl")["data"]
    assert _one(prod, "ConfigMap", "training-nccl")["data"]["NCCL_IB_DISABLE"] == "1"
    assert nccl["NCCL_IB_DISABLE"] == "0" and nccl["NCCL_IB_HCA"]
    runtime = _one(prod_infiniband, "TrainingRuntime")
    container = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"][
        "template"]["spec"]["containers"][0]
    assert container["securityContext"]["capabilities"]["add"] == ["IPC_LOCK"]
    config = _one(prod_infiniband, "ConfigMap", "trainer-config")["data"]
    (group,) = _one(prod_infiniband, "ClusterQueue")["spec"]["resourceGroups"]
    assert config["MEDGO_TRAINER_K8S_RDMA_RESOURCE"] in group["coveredResources"]
    assert "MEDGO_TRAINER_K8S_RDMA_RESOURCE" not in _one(prod, "ConfigMap",
                                                          "trainer-config")["data"]


def _settings_from(config: dict[str, str]):
    """TrainerSettings exactly as a pod with this trainer-config ConfigMap gets them."""
    from medgo_trainer.settings import TrainerSettings

    with pytest.MonkeyPatch.context() as env:
        for key, value in config.items():
            env.setenv(key, value)
        return TrainerSettings()


def _eval_job(objects: list[dict]) -> dict:
    """The training loop's evaluation Job as the trainer builds it with these objects'
    settings (a 72B DPO candidate)."""
    from medgo_trainer.training.executors import k8s
    from medgo_trainer.training.executors.k8s_loop import build_eval_job

    settings = _settings_from(_one(objects, "ConfigMap", "trainer-config")["data"])
    return build_eval_job(
        "medgo-72b-dpo-1a2b3c4d-eval", k8s.cluster_spec(settings),
        inference_image=settings.k8s_inference_image, serving={}, command=["true"],
        model_dir=settings.model_dir, data_dir=settings.data_dir, serve_timeout_s=1800,
        timeout_s=14400)


def _jobs(objects: list[dict], job_api: str) -> list[dict]:
    """What `medgo-train submit --executor k8s` builds with these objects' settings."""
    from medgo_trainer.training.executors import k8s
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path

    settings = _settings_from(_one(objects, "ConfigMap", "trainer-config")["data"])
    cluster = k8s.cluster_spec(settings, job_api=job_api)
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [], check_data=False)
    return k8s.build_job(recipe, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                         cluster=cluster)


def _pods(job: dict) -> list[tuple[dict, dict]]:
    """(pod spec, its main container) of each kind of pod the job creates, merged the
    way its controller merges them (TrainJob: runtime template + podSpecOverrides)."""
    if job["kind"] == "PyTorchJob":
        return [(s["template"]["spec"], s["template"]["spec"]["containers"][0])
                for s in job["spec"]["pytorchReplicaSpecs"].values()]
    (override,) = job["spec"]["podSpecOverrides"]
    (mounts,) = override["containers"]
    container = {**mounts, "image": job["spec"]["trainer"]["image"],
                 "resources": job["spec"]["trainer"]["resourcesPerNode"]}
    return [({k: v for k, v in override.items() if k != "containers"}, container)]


@pytest.mark.parametrize("variant", ["prod", "prod_infiniband"])
def test_the_trainjob_built_from_prod_settings_runs_on_what_prod_ships(request, variant: str,
                                                                       k8s_schemas) -> None:
    objects = request.getfixturevalue(variant)
    configmap, job = _jobs(objects, "trainjob")
    assert k8s_schemas.errors(configmap) + k8s_schemas.errors(job) == []
    assert job["metadata"]["namespace"] == _one(objects, "Namespace")["metadata"]["name"]
    runtime = _one(objects, job["spec"]["runtimeRef"]["kind"],
                   job["spec"]["runtimeRef"]["name"])
    replicated = {j["name"]: j for j in runtime["spec"]["template"]["spec"]["replicatedJobs"]}
    (override,) = job["spec"]["podSpecOverrides"]
    for target in override["targetJobs"]:
        containers = replicated[target["name"]]["template"]["spec"]["template"]["spec"][
            "containers"]
        assert {c["name"] for c in override["containers"]} <= {c["name"] for c in containers}
    local = _one(objects, "LocalQueue")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == local["metadata"]["name"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    flavor = _one(objects, "ResourceFlavor")["spec"]
    for pod, container in _pods(job):
        assert ("ServiceAccount", pod["serviceAccountName"]) in names
        for volume in pod["volumes"]:
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            assert claim is None or ("PersistentVolumeClaim", claim) in names
        assert pod["nodeSelector"] == flavor["nodeLabels"]
        assert container["image"] == _one(objects, "Deployment", "trainer")["spec"][
            "template"]["spec"]["containers"][0]["image"]


@pytest.mark.parametrize("variant", ["prod", "prod_infiniband"])
@pytest.mark.parametrize("job_api", ["trainjob", "pytorchjob"])
def test_the_queue_covers_and_holds_a_whole_training_job(request, variant: str,
                                                         job_api: str) -> None:
    """Kueue admits a job only if the ClusterQueue covers every resource it requests
    and its quota holds all pods at once (gang admission)."""
    objects = request.getfixturevalue(variant)
    *_, job = _jobs(objects, job_api)
    (group,) = _one(objects, "ClusterQueue")["spec"]["resourceGroups"]
    (flavor,) = group["flavors"]
    quota = {r["name"]: _quantity(r["nominalQuota"]) for r in flavor["resources"]}
    nodes = (job["spec"]["trainer"]["numNodes"] if job_api == "trainjob" else
             sum(s["replicas"] for s in job["spec"]["pytorchReplicaSpecs"].values()))
    (_, container), *_ = _pods(job)
    requests = container["resources"]["requests"]
    assert set(requests) <= set(group["coveredResources"]), "Kueue would never admit it"
    for resource, amount in requests.items():
        assert nodes * _quantity(amount) <= quota[resource], resource


def test_the_pytorchjob_fallback_validates_against_its_crd(prod: list[dict],
                                                           k8s_schemas) -> None:
    _, job = _jobs(prod, "pytorchjob")
    assert k8s_schemas.errors(job) == []
    for _, container in _pods(job):
        assert container["envFrom"] == [{"configMapRef": {"name": "training-nccl",
                                                          "optional": True}}]


def _training_containers(objects: list[dict], job: dict) -> list[dict]:
    """The training container of each kind of pod `job` creates, as the node runs it: a
    TrainJob's is the runtime's `node` container with the job's image and resources."""
    if job["kind"] == "PyTorchJob":
        return [container for _, container in _pods(job)]
    runtime = _one(objects, "TrainingRuntime", job["spec"]["runtimeRef"]["name"])
    (replicated,) = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    (node,) = replicated["template"]["spec"]["template"]["spec"]["containers"]
    return [{**node, **container} for _, container in _pods(job)]


def _added_capabilities(container: dict) -> list[str]:
    return container.get("securityContext", {}).get("capabilities", {}).get("add", [])


@pytest.mark.parametrize("variant", ["prod", "prod_infiniband"])
@pytest.mark.parametrize("job_api", ["trainjob", "pytorchjob"])
def test_rdma_pods_get_the_device_nccl_over_ib_and_ipc_lock(request, variant: str,
                                                           job_api: str) -> None:
    """With the infiniband component every training pod of either job API requests the
    RDMA device, reads NCCL settings with InfiniBand on, and adds IPC_LOCK to an
    otherwise empty capability set; without it, none of the three."""
    objects = request.getfixturevalue(variant)
    rdma = _one(objects, "ConfigMap", "trainer-config")["data"].get(
        "MEDGO_TRAINER_K8S_RDMA_RESOURCE")
    assert (rdma is not None) == (variant == "prod_infiniband")
    *_, job = _jobs(objects, job_api)
    nccl = _one(objects, "ConfigMap", "training-nccl")["data"]
    for container in _training_containers(objects, job):
        requests = container["resources"]["requests"]
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        if rdma:
            assert requests[rdma] == container["resources"]["limits"][rdma] == "1"
            assert _added_capabilities(container) == ["IPC_LOCK"]
        else:
            assert not [r for r in requests if r.startswith("rdma/")]
            assert _added_capabilities(container) == []
        sources = {s["configMapRef"]["name"] for s in container["envFrom"]}
        assert sources == {"training-nccl"}
    assert nccl["NCCL_IB_DISABLE"] == ("0" if rdma else "1")


@pytest.mark.parametrize("variant", ["prod", "prod_infiniband"])
def test_no_other_pod_gets_a_capability(request, variant: str) -> None:
    """IPC_LOCK only where RDMA needs it: no serving pod, CronJob or the loop's
    evaluation Job adds any capability; the runtime's node container adds IPC_LOCK only
    with InfiniBand."""
    objects = request.getfixturevalue(variant)
    evaluation = _eval_job(objects)
    added = {}
    for obj in [*objects, evaluation]:
        spec = obj.get("spec", {})
        if obj["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if obj["kind"] == "TrainingRuntime":
            spec = spec["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]
        pod = spec.get("template", {}).get("spec", {})
        for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
            if _added_capabilities(c):
                added[f"{obj['kind']}/{obj['metadata']['name']}/{c['name']}"] = (
                    _added_capabilities(c))
    want = ({"TrainingRuntime/medgo-torch-deepspeed/node": ["IPC_LOCK"]}
            if variant == "prod_infiniband" else {})
    assert added == want


def test_an_rdma_device_named_twice_is_refused() -> None:
    """Bad input: the device as a node resource too would be requested twice over."""
    from medgo_trainer.training.executors import k8s

    with pytest.raises(ValueError, match="rdma/ib is both the RDMA resource and a node "):
        k8s.ClusterSpec(image="i", rdma_resource="rdma/ib", node_resources={"rdma/ib": "1"})


_UNITS = {"": 1, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "m": 1e-3}


def _quantity(value: str | int) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([A-Za-z]*)", str(value)).groups()
    return float(number) * _UNITS[unit]


def test_prod_shares_one_registry_on_postgresql(rendered: dict[str, list[dict]]) -> None:
    """The job API and the weekly loop write the same registry: in prod both read its
    URL from one Secret (PostgreSQL); locally nothing sets it (SQLite on the model store)."""
    def registry_env(pod: dict) -> dict | None:
        return next((e for e in pod["containers"][0].get("env", [])
                     if e["name"] == "MEDGO_TRAINER_REGISTRY_URL"), None)

    prod = rendered["prod-a100"]
    api = _one(prod, "Deployment", "trainer")["spec"]["template"]["spec"]
    loop = _one(prod, "CronJob", "feedback-loop")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"]
    assert registry_env(api) == registry_env(loop) == {
        "name": "MEDGO_TRAINER_REGISTRY_URL",
        "valueFrom": {"secretKeyRef": {"name": "trainer-registry-dsn", "key": "dsn"}}}
    local = rendered["local-cpu"]
    assert registry_env(_one(local, "Deployment", "trainer")["spec"]["template"]["spec"]) is None
    assert "MEDGO_TRAINER_REGISTRY_URL" not in _one(local, "ConfigMap", "trainer-config")["data"]


def test_the_queue_admits_the_loops_evaluation_job(prod: list[dict]) -> None:
    """The evaluation Job queues in the same LocalQueue: its vLLM sidecar and evaluator
    together (Kueue adds a sidecar's requests to the pod's) fit the quota."""
    job = _eval_job(prod)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == _one(
        prod, "LocalQueue")["metadata"]["name"]
    pod = job["spec"]["template"]["spec"]
    requests: dict[str, float] = {}
    for container in pod["initContainers"] + pod["containers"]:
        for resource, amount in container["resources"]["requests"].items():
            requests[resource] = requests.get(resource, 0) + _quantity(amount)
    (group,) = _one(prod, "ClusterQueue")["spec"]["resourceGroups"]
    quota = {r["name"]: _quantity(r["nominalQuota"]) for r in group["flavors"][0]["resources"]}
    assert set(requests) <= set(group["coveredResources"])
    assert all(amount <= quota[resource] for resource, amount in requests.items())
