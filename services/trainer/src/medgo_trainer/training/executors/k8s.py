"""The Kubernetes executor: a recipe as a Kubeflow training job, submitted with the
official client.

`build_job` is pure (a recipe and a `ClusterSpec` in, plain dicts out) so the manifest
is tested field by field without a cluster. `ClusterSpec.job_api` picks the job: a
Kubeflow Trainer v2 `TrainJob` on the MedGo training runtime (`trainjob`, the default;
`k8s_trainjob.py`), or a Training Operator v1 `PyTorchJob` (`pytorchjob`, for clusters
still on it). Either runs the same stage command as the local executor under
`torchrun` on every node: the controller injects `PET_NNODES`, `PET_NODE_RANK`,
`PET_MASTER_ADDR`/`PET_MASTER_PORT`, which torchrun reads, and each node runs one rank
per GPU. NCCL settings come from the ConfigMap `training-nccl` (deploy/k8s, with an
InfiniBand knob); with InfiniBand (`rdma_resource`) each node also requests an RDMA
device and its container keeps `IPC_LOCK` (RDMA pins memory) while dropping every
other capability. The recipe's DeepSpeed JSON is
shipped in a ConfigMap and mounted read-only; data and checkpoints live on PVCs, so an
evicted or restarted pod resumes from its last `checkpoint-N`
(`trl.resume_from_checkpoint=auto`).

All 64 ranks must start together or NCCL's rendezvous times out while the first pods
hold their GPUs: the cluster needs gang scheduling — Kueue (`queue` sets the
`kueue.x-k8s.io/queue-name` label; admission is all-or-nothing) or Volcano
(`scheduler_name="volcano"`; the operator then creates a PodGroup with minMember = all
replicas). See docs/training.md.

`wait_for_job` follows a submitted job (a TrainJob or PyTorchJob, or the batch Job the
feedback loop evaluates in) to its terminal status condition by polling it with the same client, so
the weekly CronJob can run training and evaluation as cluster workloads and go on.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors import k8s_trainjob
from medgo_trainer.training.recipe import Recipe

JOB_APIS = ("trainjob", "pytorchjob")
#: Kind → (group, version, plural) of the custom resources submitted and followed here.
CUSTOM = {"PyTorchJob": ("kubeflow.org", "v1", "pytorchjobs"),
          k8s_trainjob.KIND: (k8s_trainjob.GROUP, k8s_trainjob.VERSION, k8s_trainjob.PLURAL)}
NCCL_CONFIGMAP = "training-nccl"  # deploy/k8s/components/training-runtime
DEEPSPEED_MOUNT = "/etc/medgo/deepspeed"
DATA_MOUNT, CKPT_MOUNT = "/data", "/ckpt"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
#: A job's terminal condition types, success first (Kubeflow's and batch/v1's names).
_TERMINAL = {"PyTorchJob": ("Succeeded", "Failed"), k8s_trainjob.KIND: ("Complete", "Failed"),
             "Job": ("Complete", "Failed")}
#: The label that finds a job's pods, for the `kubectl logs` hint.
_POD_LABEL = {k8s_trainjob.KIND: k8s_trainjob.POD_LABEL, "PyTorchJob": "medgo.io/job",
              "Job": "medgo.io/job"}

log = logging.getLogger(__name__)


class SubmitError(RuntimeError):
    """The API server refused the job; the message carries its status and reason."""


class JobFailedError(SubmitError):
    """A submitted job ended Failed, was deleted, or did not finish in time."""


def check_name(name: str, max_length: int = 53) -> str:
    """`name` if it can name a job and label its pods, else a `ValueError` saying so.

    53 leaves room for the suffixes controllers append (a PyTorchJob's `-worker-7`).
    """
    if len(name) > max_length or not _NAME.match(name):
        raise ValueError(f"job name {name!r} must be a DNS label of at most {max_length} "
                         "characters")
    return name


@contextmanager
def connect() -> Iterator[Any]:
    """An `ApiClient` from the in-cluster service account, or ~/.kube/config."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        config.load_config()
    except ConfigException as exc:
        raise SubmitError(f"no Kubernetes configuration ({exc}); set KUBECONFIG, run "
                          "in-cluster, or use --print to render the manifests only") from None
    with client.ApiClient() as api:
        yield api


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
    job_api: str = "trainjob"
    runtime: str = "medgo-torch-deepspeed"  # the TrainingRuntime a TrainJob references
    #: Serving outranks training (PriorityClasses shipped in deploy/k8s), and GPU pods
    #: run under the GPU operator's runtime class; None leaves either unset.
    priority_class: str | None = "medgo-training"
    runtime_class: str | None = "nvidia"
    #: More per-node resources (an RDMA device goes in `rdma_resource`).
    node_resources: dict[str, str] = field(default_factory=dict)
    #: The RDMA device each node requests, one per pod (the infiniband component);
    #: None = NCCL over TCP sockets, and the container keeps no capability at all.
    rdma_resource: str | None = None

    def __post_init__(self) -> None:
        if self.nodes < 1 or self.gpus_per_node < 1:
            raise ValueError("nodes and gpus_per_node must be at least 1")
        if self.job_api not in JOB_APIS:
            raise ValueError(f"job_api {self.job_api!r} is not one of {', '.join(JOB_APIS)}")
        if self.rdma_resource and self.rdma_resource in self.node_resources:
            raise ValueError(f"{self.rdma_resource} is both the RDMA resource and a node "
                             "resource; name it once, as the RDMA resource")
        if self.scheduler_name == "volcano" and self.job_api != "pytorchjob":
            raise ValueError("Volcano gang scheduling is set up for PyTorchJobs; TrainJobs "
                             "are admitted whole by Kueue (queue)")


def cluster_spec(settings: TrainerSettings, **overrides: Any) -> ClusterSpec:
    """The cluster the trainer's settings describe (`MEDGO_TRAINER_K8S_*`)."""
    values = {"image": settings.k8s_image, "namespace": settings.k8s_namespace,
              "job_api": settings.k8s_job_api, "runtime": settings.k8s_runtime,
              "node_resources": dict(settings.k8s_node_resources),
              "rdma_resource": settings.k8s_rdma_resource}
    return ClusterSpec(**(values | overrides))


def gpu_placement(cluster: ClusterSpec) -> dict[str, Any]:
    """The node selector and taint toleration that put a pod on the cluster's GPU nodes."""
    return {
        "nodeSelector": {"nvidia.com/gpu.product": cluster.gpu_product},
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
    }


def scheduling(cluster: ClusterSpec) -> dict[str, Any]:
    """Priority and runtime class of a pod the executor writes in full (a PyTorchJob
    replica, the evaluation Job); a TrainJob's come from its TrainingRuntime."""
    classes = {"priorityClassName": cluster.priority_class,
               "runtimeClassName": cluster.runtime_class}
    return {key: value for key, value in classes.items() if value}


def _resources(cluster: ClusterSpec) -> dict[str, Any]:
    """One node's resources: all its GPUs (and any extra device), CPU, memory."""
    devices = {"nvidia.com/gpu": cluster.gpus_per_node, **cluster.node_resources}
    if cluster.rdma_resource:
        devices[cluster.rdma_resource] = "1"  # a shared device: one grant serves every HCA
    return {"requests": {"cpu": cluster.cpu, "memory": cluster.memory, **devices},
            "limits": {"memory": cluster.memory, **devices}}


def capabilities(cluster: ClusterSpec) -> dict[str, list[str]]:
    """A training container's capabilities: none, but IPC_LOCK where RDMA is used
    (verbs register, that is pin, NCCL's buffers: without it memlock limits fail them)."""
    return {"drop": ["ALL"], **({"add": ["IPC_LOCK"]} if cluster.rdma_resource else {})}


def _storage(cluster: ClusterSpec,
             deepspeed_configmap: str | None) -> tuple[list[dict], list[dict]]:
    """(volumes, the training container's mounts): data, checkpoints, shm, DeepSpeed."""
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
    return volumes, mounts


def _pod_template(name: str, role: str, command: list[str], cluster: ClusterSpec,
                  deepspeed_configmap: str | None) -> dict[str, Any]:
    """A PyTorchJob replica's pod (a TrainJob's comes from the runtime + overrides)."""
    volumes, mounts = _storage(cluster, deepspeed_configmap)
    spec: dict[str, Any] = {
        "serviceAccountName": cluster.service_account,
        **gpu_placement(cluster),
        **scheduling(cluster),
        "containers": [{
            "name": "pytorch",  # the training operator looks the container up by this name
            "image": cluster.image,
            "command": command,
            "envFrom": [{"configMapRef": {"name": NCCL_CONFIGMAP, "optional": True}}],
            "env": [{"name": "HF_HUB_OFFLINE", "value": "1"}],
            "resources": _resources(cluster),
            "volumeMounts": mounts,
            "securityContext": {"allowPrivilegeEscalation": False,
                                "capabilities": capabilities(cluster)},
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
    overrides: list[str] | tuple[str, ...] = (), out: str | None = None,
) -> list[dict[str, Any]]:
    """The objects to create, in order: the DeepSpeed ConfigMap (if any), the job
    (`cluster.job_api`: a TrainJob or a PyTorchJob).

    `recipe_name` is what the pods pass to `--recipe` (a packaged recipe name, or a path
    on the data PVC); `recipe` is the resolved recipe, read for its DeepSpeed config.
    `out` is the run's directory as the pods see it (default `/ckpt/<name>`).
    """
    check_name(name)
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
    stage = ["-m", "medgo_trainer.cli", recipe.stage, "--recipe", recipe_name,
             "--out", out or f"{CKPT_MOUNT}/{name}", "--no-progress"]
    for item in [*overrides, "trl.resume_from_checkpoint=auto"]:
        stage += ["--set", item]
    labels = {"app.kubernetes.io/part-of": "medgo", "medgo.io/stage": recipe.stage,
              "medgo.io/job": name}
    if cluster.queue:
        labels["kueue.x-k8s.io/queue-name"] = cluster.queue
    if cluster.job_api == "trainjob":
        objects.append(_trainjob(name, ["torchrun", *stage], cluster, configmap, labels))
    else:
        command = ["torchrun", f"--nnodes={cluster.nodes}",
                   f"--nproc_per_node={cluster.gpus_per_node}", *stage]
        objects.append(_pytorchjob(name, command, cluster, configmap, labels))
    return objects


def _trainjob(name: str, command: list[str], cluster: ClusterSpec, configmap: str | None,
              labels: dict[str, str]) -> dict[str, Any]:
    volumes, mounts = _storage(cluster, configmap)
    pod = {"serviceAccountName": cluster.service_account, **gpu_placement(cluster),
           "volumes": volumes,
           "containers": [{"name": k8s_trainjob.NODE, "volumeMounts": mounts}]}
    return k8s_trainjob.build_trainjob(
        name, namespace=cluster.namespace, runtime=cluster.runtime, image=cluster.image,
        command=command, nodes=cluster.nodes, procs_per_node=cluster.gpus_per_node,
        resources=_resources(cluster), pod=pod, labels=labels)


def _pytorchjob(name: str, command: list[str], cluster: ClusterSpec, configmap: str | None,
                labels: dict[str, str]) -> dict[str, Any]:
    replicas = {"Master": {"replicas": 1, "restartPolicy": "OnFailure",
                           "template": _pod_template(name, "master", command, cluster, configmap)}}
    if cluster.nodes > 1:
        replicas["Worker"] = {"replicas": cluster.nodes - 1, "restartPolicy": "OnFailure",
                              "template": _pod_template(name, "worker", command, cluster,
                                                        configmap)}
    return {
        "apiVersion": "/".join(CUSTOM["PyTorchJob"][:2]), "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": cluster.namespace, "labels": labels},
        "spec": {
            "nprocPerNode": str(cluster.gpus_per_node),
            "runPolicy": {"cleanPodPolicy": "None", "backoffLimit": 3,
                          **({"schedulingPolicy": {"minAvailable": cluster.nodes}}
                             if cluster.scheduler_name == "volcano" else {})},
            "pytorchReplicaSpecs": replicas,
        },
    }


def submit(objects: list[dict[str, Any]], api_client: Any, *,
           dry_run: bool = False) -> list[dict[str, Any]]:
    """Create the objects with the official client; `dry_run` asks the server to validate
    without persisting (`dryRun=All`). Returns what the server answered."""
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    core = client.CoreV1Api(api_client)
    batch = client.BatchV1Api(api_client)
    custom = client.CustomObjectsApi(api_client)
    flag = "All" if dry_run else None
    created = []
    for obj in objects:
        namespace = obj["metadata"]["namespace"]
        try:
            if obj["kind"] == "ConfigMap":
                answer = core.create_namespaced_config_map(namespace, obj, dry_run=flag)
                created.append(api_client.sanitize_for_serialization(answer))
            elif obj["kind"] == "Job":
                answer = batch.create_namespaced_job(namespace, obj, dry_run=flag)
                created.append(api_client.sanitize_for_serialization(answer))
            else:
                created.append(custom.create_namespaced_custom_object(
                    *CUSTOM[obj["kind"]][:2], namespace, CUSTOM[obj["kind"]][2], obj,
                    dry_run=flag))
        except ApiException as exc:
            reason = _reason(exc)
            raise SubmitError(f"creating {obj['kind']} {obj['metadata']['name']} in "
                              f"{namespace} failed: {exc.status} {reason}") from exc
    return created


def wait_for_job(
    api_client: Any, kind: str, name: str, namespace: str, *, timeout_s: float,
    poll_s: float = 30.0,
) -> dict[str, Any]:
    """
    Poll a `TrainJob`, `PyTorchJob` or batch `Job` until its success condition
    (Complete, Succeeded, Complete); return it.

    Raises `JobFailedError` when the job's Failed condition is set, when it is gone
    (404), or after `timeout_s` (the job is left as it is: a job queued by Kueue
    may still be admitted, and its pods' logs stay readable). Each message names the
    job and the `kubectl` commands that show why. An unreachable or failing API server
    (5xx, connection errors) is retried until the deadline, since a multi-hour wait
    must not die of one blip of the control plane.
    """
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    success, failure = _TERMINAL[kind]
    logs = (f"kubectl -n {namespace} describe {kind.lower()} {name}; kubectl -n {namespace} "
            f"logs -l {_POD_LABEL[kind]}={name} --all-containers --prefix --tail=200")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if kind == "Job":
                answer = client.BatchV1Api(api_client).read_namespaced_job(
                    name, namespace, _request_timeout=60)  # `get jobs`, as the Role allows
                status = api_client.sanitize_for_serialization(answer).get("status") or {}
            else:
                group, version, plural = CUSTOM[kind]
                status = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
                    group, version, namespace, plural, name, _request_timeout=60
                ).get("status") or {}
        except ApiException as exc:
            if exc.status == 404:
                raise JobFailedError(f"{kind} {name} in {namespace} is gone (deleted while "
                                     "the loop waited for it)") from exc
            if exc.status is None or exc.status < 500:
                raise SubmitError(f"reading {kind} {name} in {namespace} failed: "
                                  f"{exc.status} {_reason(exc)}") from exc
            log.warning("reading %s %s: %s %s; retrying", kind, name, exc.status, exc.reason)
            status = {}
        except HTTPError as exc:
            log.warning("reading %s %s: %s; retrying", kind, name, exc)
            status = {}
        done = {c.get("type"): c for c in status.get("conditions") or []
                if c.get("status") == "True"}
        if success in done:
            return done[success]
        if failure in done:
            why = done[failure]
            raise JobFailedError(f"{kind} {name} in {namespace} failed "
                                 f"({why.get('reason') or 'no reason'}: "
                                 f"{why.get('message') or 'no message'}); see {logs}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise JobFailedError(f"{kind} {name} in {namespace} did not finish within "
                                 f"{timeout_s:g} s; it is left as it is: {logs}")
        time.sleep(min(poll_s, left))


def _reason(exc: Any) -> str:
    try:
        return json.loads(exc.body).get("message") or exc.reason
    except (TypeError, ValueError):
        return str(exc.reason)
