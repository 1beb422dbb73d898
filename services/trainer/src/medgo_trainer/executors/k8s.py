"""The Kubernetes executor: a recipe as a Kubeflow `PyTorchJob`, submitted with the
official client.

`build_job` is pure (a recipe and a `ClusterSpec` in, plain dicts out) so the manifest
is tested field by field without a cluster. The job runs the same stage command as
the local executor under `torchrun` on every node: the training operator injects
`PET_NNODES`, `PET_NODE_RANK`, `PET_MASTER_ADDR`/`PET_MASTER_PORT`, which torchrun reads,
and each node runs `nprocPerNode` ranks (one per GPU). The recipe's DeepSpeed JSON is
shipped in a ConfigMap and mounted read-only; data and checkpoints live on PVCs, so an
evicted or restarted pod resumes from its last `checkpoint-N`
(`trl.resume_from_checkpoint=auto`).

All 64 ranks must start together or NCCL's rendezvous times out while the first pods
hold their GPUs: the cluster needs gang scheduling — Kueue (`queue` sets the
`kueue.x-k8s.io/queue-name` label; admission is all-or-nothing) or Volcano
(`scheduler_name="volcano"`; the operator then creates a PodGroup with minMember = all
replicas). See docs/training.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgo_trainer.recipe import Recipe

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
DEEPSPEED_MOUNT = "/etc/medgo/deepspeed"
DATA_MOUNT, CKPT_MOUNT = "/data", "/ckpt"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,51}[a-z0-9])?$")


class SubmitError(RuntimeError):
    """The API server refused the job; the message carries its status and reason."""


@dataclass(frozen=True)
class ClusterSpec:
    """Where and on what a job runs; defaults are the paper's 8 nodes x 8 A100-80GB."""

    image: str
    namespace: str = "medgo"
    nodes: int = 8
    gpus_per_node: int = 8
    data_pvc: str = "medgo-data"
    checkpoints_pvc: str = "medgo-checkpoints"
    gpu_product: str = "NVIDIA-A100-SXM4-80GB"
    cpu: str = "64"
    memory: str = "900Gi"
    shm: str = "64Gi"
    queue: str | None = "medgo-training"
    scheduler_name: str | None = None
    service_account: str = "medgo-trainer"

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError("nodes and gpus_per_node must be at least 1")


def _pod_template(name: str, role: str, command: list[str], cluster: ClusterSpec,
                  deepspeed_configmap: str | None) -> dict[str, Any]:
    gpu = {"nvidia.com/gpu": cluster.gpus_per_node}
    mounts = [
        {"name": "data", "mountPath": DATA_MOUNT, "readOnly": True},
        {"name": "checkpoints", "mountPath": CKPT_MOUNT},
        {"name": "dshm", "mountPath": "/dev/shm"},  # NCCL's shared-memory transport
    ]
    volumes = [
        {"name": "data", "persistentVolumeClaim": {"claimName": cluster.data_pvc,
                                                   "readOnly": True}},
        {"name": "checkpoints", "persistentVolumeClaim": {"claimName": cluster.checkpoints_pvc}},
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cluster.shm}},
    ]
    if deepspeed_configmap:
        mounts.append({"name": "deepspeed", "mountPath": DEEPSPEED_MOUNT, "readOnly": True})
        volumes.append({"name": "deepspeed", "configMap": {"name": deepspeed_configmap}})
    spec: dict[str, Any] = {
        "serviceAccountName": cluster.service_account,
        "nodeSelector": {"nvidia.com/gpu.product": cluster.gpu_product},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "containers": [{
            "name": "pytorch",  # the training operator looks the container up by this name
            "image": cluster.image,
            "command": command,
            "env": [{"name": "HF_HUB_OFFLINE", "value": "1"},
                    {"name": "NCCL_DEBUG", "value": "WARN"}],
            "resources": {
                "requests": {"cpu": cluster.cpu, "memory": cluster.memory, **gpu},
                "limits": {"memory": cluster.memory, **gpu},
            },
            "volumeMounts": mounts,
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": {"drop": ["ALL"]}},
        }],
        "volumes": volumes,
    }
    if cluster.scheduler_name:
        spec["schedulerName"] = cluster.scheduler_name
    labels = {"app.kubernetes.io/part-of": "medgo", "app.kubernetes.io/name": "medgo-trainer",
              "medgo.io/job": name, "medgo.io/role": role}
    return {"metadata": {"labels": labels}, "spec": spec}


def build_job(
    recipe: Recipe, *, recipe_name: str, name: str, cluster: ClusterSpec,
    overrides: list[str] | tuple[str, ...] = (),
) -> list[dict[str, Any]]:
    """The objects to create, in order: the DeepSpeed ConfigMap (if any), the PyTorchJob.

    `recipe_name` is what the pods pass to `--recipe` (a packaged recipe name, or a path
    on the data PVC); `recipe` is the resolved recipe, read for its DeepSpeed config.
    """
    if not _NAME.match(name):
        raise ValueError(f"job name {name!r} must be a DNS label of at most 53 characters")
    objects: list[dict[str, Any]] = []
    overrides = list(overrides)
    ds_path = recipe.trl.get("deepspeed")
    configmap = None
    if isinstance(ds_path, str):
        configmap = f"{name}-deepspeed"
        ds_file = Path(ds_path).name
        objects.append({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap, "namespace": cluster.namespace,
                         "labels": {"app.kubernetes.io/part-of": "medgo", "medgo.io/job": name}},
            "data": {ds_file: json.dumps(json.loads(Path(ds_path).read_text()), indent=2)},
        })
        overrides.append(f"trl.deepspeed={DEEPSPEED_MOUNT}/{ds_file}")
    command = ["torchrun", f"--nnodes={cluster.nodes}",
               f"--nproc_per_node={cluster.gpus_per_node}", "-m", "medgo_trainer.cli",
               recipe.stage, "--recipe", recipe_name, "--out", f"{CKPT_MOUNT}/{name}",
               "--no-progress"]
    for item in [*overrides, "trl.resume_from_checkpoint=auto"]:
        command += ["--set", item]
    replicas = {"Master": {"replicas": 1, "restartPolicy": "OnFailure",
                           "template": _pod_template(name, "master", command, cluster, configmap)}}
    if cluster.nodes > 1:
        replicas["Worker"] = {"replicas": cluster.nodes - 1, "restartPolicy": "OnFailure",
                              "template": _pod_template(name, "worker", command, cluster,
                                                        configmap)}
    labels = {"app.kubernetes.io/part-of": "medgo", "medgo.io/stage": recipe.stage}
    if cluster.queue:
        labels["kueue.x-k8s.io/queue-name"] = cluster.queue
    objects.append({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": cluster.namespace, "labels": labels},
        "spec": {
            "nprocPerNode": str(cluster.gpus_per_node),
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3,
                          **({"schedulingPolicy": {"minAvailable": cluster.nodes}}
                             if cluster.scheduler_name == "volcano" else {})},
            "pytorchReplicaSpecs": replicas,
        },
    })
    return objects


def submit(objects: list[dict[str, Any]], api_client: Any, *,
           dry_run: bool = False) -> list[dict[str, Any]]:
    """Create the objects with the official client; `dry_run` asks the server to validate
    without persisting (`dryRun=All`). Returns what the server answered."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    flag = "All" if dry_run else None
    created = []
    for obj in objects:
        namespace = obj["metadata"]["namespace"]
        try:
            if obj["kind"] == "ConfigMap":
                answer = core.create_namespaced_config_map(namespace, obj, dry_run=flag)
                created.append(api_client.sanitize_for_serialization(answer))
            else:
                created.append(custom.create_namespaced_custom_object(
                    GROUP, VERSION, namespace, PLURAL, obj, dry_run=flag))
        except ApiException as exc:
            reason = _reason(exc)
            raise SubmitError(f"creating {obj['kind']} {obj['metadata']['name']} in "
                              f"{namespace} failed: {exc.status} {reason}") from exc
    return created


def _reason(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        return str(exc.reason)
