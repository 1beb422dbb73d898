"""A training job as a Kubeflow Trainer v2 `TrainJob` on the MedGo training runtime.

Pure, like the rest of `k8s.build_job` (which calls it for `job_api="trainjob"`, the
default): the TrainJob says only what differs per job - image, the stage command, nodes
and GPUs per node, resources, volumes, placement - and references the `TrainingRuntime`
that deploy/k8s/components/training-runtime ships for the rest: the `node` replicated
job and container torchrun runs in, the NCCL settings (ConfigMap `training-nccl`), the
security context and JobSet's restart policy. Trainer v2's torch plugin sets
`PET_NNODES`, `PET_NPROC_PER_NODE`, `PET_NODE_RANK`, `PET_MASTER_ADDR` and
`PET_MASTER_PORT` on every node, which torchrun reads, so the command carries no node
flags. Kueue admits the TrainJob whole through its `kueue.x-k8s.io/queue-name` label.
"""

from __future__ import annotations

from typing import Any

GROUP, VERSION, PLURAL, KIND = "trainer.kubeflow.org", "v1alpha1", "trainjobs", "TrainJob"
NODE = "node"  # the runtime's replicated job and its container (Trainer v2's names)
#: The label JobSet puts on a TrainJob's pods (`kubectl logs -l ...=<job>`).
POD_LABEL = "jobset.sigs.k8s.io/jobset-name"


def build_trainjob(
    name: str, *, namespace: str, runtime: str, image: str, command: list[str], nodes: int,
    procs_per_node: int, resources: dict[str, Any], pod: dict[str, Any],
    labels: dict[str, str],
) -> dict[str, Any]:
    """The TrainJob; `pod` holds the pod-level overrides (service account, node selector,
    tolerations, volumes) and `containers[0].volumeMounts` for the `node` container."""
    job_labels = {k: v for k, v in labels.items() if not k.startswith("kueue.x-k8s.io/")}
    return {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": KIND,
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "runtimeRef": {"apiGroup": GROUP, "kind": "TrainingRuntime", "name": runtime},
            "labels": job_labels,  # on the JobSet and its Jobs (kube-state-metrics, alerts)
            "trainer": {
                "image": image,
                "command": command,
                "numNodes": nodes,
                "numProcPerNode": procs_per_node,
                "resourcesPerNode": resources,
            },
            "podSpecOverrides": [{"targetJobs": [{"name": NODE}], **pod}],
        },
    }
