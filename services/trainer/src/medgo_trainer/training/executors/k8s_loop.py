"""`medgo-train loop --executor k8s`: the loop's training and evaluation as cluster jobs.

The weekly CronJob runs the loop in a small pod (export, registry, gate, promotion);
the two compute steps run where the GPUs are, and the loop waits for each:

- step 3 is the DPO training job `k8s.build_job` renders (as `medgo-train submit
  --executor k8s` does: a TrainJob, or a PyTorchJob with `MEDGO_TRAINER_K8S_JOB_API=
  pytorchjob`), named after the checkpoint id; when it has succeeded, the run's
  `metrics.json` is read from the model store;
- before step 3, the baseline merged into its base (`medgo-train export`, a batch Job
  on one node's CPUs and memory, `build_export_job`) is the DPO stage's starting and
  reference policy: under ZeRO-3 the loaded base is partitioned across ranks and PEFT
  cannot merge into it, so the merge happens outside the training job, once per
  baseline (`<model store>/checkpoints/<baseline>/reference`, reused while it serves);
- step 5 is a batch Job on one GPU node (`build_eval_job`). The inference image's own
  launcher (`medgo-inference`, with production's `inference-config` settings) serves
  the base with the baseline and candidate adapters as a native sidecar (an init
  container with `restartPolicy: Always`, Kubernetes 1.29 or later): its startupProbe
  holds the evaluator back until the model is loaded, and it is stopped when the
  evaluator exits, so the Job completes. The evaluator is the trainer image running
  `medgo-train loop evaluate`, i.e. the same `evaluate_models` the local loop runs on
  its temporary server, with the same settings for the server (`serving_env`). Two
  containers because the trainer image has no vLLM and the inference image no
  trainer; a sidecar rather than two Jobs, so the server lives exactly as long as
  its one client.

Paths: the CronJob pod, the evaluation pod and inference mount the model store (PVC
`medgo-checkpoints`) at `MEDGO_TRAINER_MODEL_DIR`, so registry paths hold in each;
training pods mount it at `/ckpt` (`k8s.CKPT_MOUNT`), and `cluster_path` rewrites
what they are given. So everything a job reads must be on the model store.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path, PurePosixPath
from typing import Any

from medgo_trainer.outputs import METRICS_FILE
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors import k8s
from medgo_trainer.training.export import EXPORT_FILE
from medgo_trainer.training.loop.evaluation import evaluate_command, serving_env
from medgo_trainer.training.loop.options import LoopError, LoopOptions
from medgo_trainer.training.recipe import RECIPES_DIR, Recipe, resolve_recipe_path
from medgo_trainer.training.registry import Checkpoint

log = logging.getLogger(__name__)

INFERENCE_PORT = 8001
INFERENCE_CONFIG = "inference-config"  # the base's ConfigMap, not hashed (base kustomization)
# The sidecar is sized as components/gpu sizes the inference Deployment (72B, TP 8).
SIDECAR_RESOURCES = {"requests": {"cpu": "16", "memory": "200Gi"},
                     "limits": {"cpu": "32", "memory": "400Gi"}}
EVALUATOR_RESOURCES = {"requests": {"cpu": "1", "memory": "2Gi"},
                       "limits": {"cpu": "2", "memory": "4Gi"}}
FINISHED_JOB_TTL_S = 7 * 24 * 3600  # a week to read a finished evaluation's logs
WAIT_GRACE_S = 300.0  # the Job's own deadline fails it first, with the clearer reason
_HARDENED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
             "capabilities": {"drop": ["ALL"]}}
_POD_SECURITY = {"runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001,
                 "fsGroup": 10001, "seccompProfile": {"type": "RuntimeDefault"}}


#: The merge of a 72B base in float32 on one node: ~290 GB of weights plus headroom.
EXPORT_RESOURCES = {"requests": {"cpu": "16", "memory": "600Gi"},
                    "limits": {"memory": "600Gi"}}

#: The Secret holding vLLM's API key (ops create it; docs/operations.md, first install).
INFERENCE_API_KEY_SECRET = "inference-api-key"


def _api_key(env_name: str) -> dict[str, Any]:
    """`env_name` from the inference API key Secret: the sidecar's vLLM requires the key
    and the evaluator presents it, as the gateway does with the serving pods."""
    return {"name": env_name, "valueFrom": {"secretKeyRef": {
        "name": INFERENCE_API_KEY_SECRET, "key": "token"}}}


def _batch_job(name: str, cluster: k8s.ClusterSpec, labels: dict[str, str],
               pod: dict[str, Any], timeout_s: float) -> dict[str, Any]:
    """One pod, never retried, bounded in time, admitted by the training queue (the
    same GPU-node quota as training), kept a week so its logs can be read."""
    job_labels = {**labels, **({"kueue.x-k8s.io/queue-name": cluster.queue}
                               if cluster.queue else {})}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": cluster.namespace, "labels": job_labels},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": int(timeout_s),
                 "ttlSecondsAfterFinished": FINISHED_JOB_TTL_S,
                 "template": {"metadata": {"labels": labels}, "spec": pod}},
    }


def build_export_job(name: str, cluster: k8s.ClusterSpec, *, command: list[str],
                     model_dir: Path, timeout_s: float) -> dict[str, Any]:
    """The merge Job: the trainer image running `command` (`medgo-train export ...`) on
    one GPU node's CPUs and memory (no GPU: a merge is additions), writing to the model
    store mounted where the trainer sees it. Pure, like `build_eval_job`."""
    k8s.check_name(name, max_length=63)
    models = str(model_dir.resolve())
    labels = {"app.kubernetes.io/part-of": "medgo", "app.kubernetes.io/name": "medgo-trainer",
              "medgo.io/job": name, "medgo.io/role": "export"}
    container = {
        "name": "export", "image": cluster.image, "command": command,
        "env": [{"name": "MEDGO_TRAINER_MODEL_DIR", "value": models},
                {"name": "HF_HUB_OFFLINE", "value": "1"}],
        "resources": EXPORT_RESOURCES, "securityContext": _HARDENED,
        "volumeMounts": [{"name": "models", "mountPath": models},
                         {"name": "tmp", "mountPath": "/tmp"}],
    }
    pod = {
        "restartPolicy": "Never", "serviceAccountName": cluster.service_account,
        "automountServiceAccountToken": False,
        "securityContext": _POD_SECURITY,
        **k8s.gpu_placement(cluster), **k8s.scheduling(cluster),
        "containers": [container],
        "volumes": [{"name": "models",
                     "persistentVolumeClaim": {"claimName": cluster.checkpoints_pvc}},
                    {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}],
    }
    return _batch_job(name, cluster, labels, pod, timeout_s)


def build_eval_job(
    name: str, cluster: k8s.ClusterSpec, *, inference_image: str, serving: dict[str, str],
    command: list[str], model_dir: Path, data_dir: Path, serve_timeout_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    """
    The evaluation Job: vLLM sidecar (`serving`: inference settings) + `command`.

    Pure, like `k8s.build_job`: what the cluster will run, tested field by field.
    `model_dir`/`data_dir` are the trainer's own paths, mounted at the same place.
    """
    k8s.check_name(name, max_length=63)
    models, data = str(model_dir.resolve()), str(data_dir.resolve())
    labels = {"app.kubernetes.io/part-of": "medgo", "app.kubernetes.io/name": "medgo-trainer",
              "medgo.io/job": name, "medgo.io/role": "eval"}
    gpu = {"nvidia.com/gpu": str(cluster.gpus_per_node)}  # quantities are strings
    scratch = [{"name": "cache", "mountPath": "/var/lib/medgo/cache"},
               {"name": "tmp", "mountPath": "/tmp"}]
    sidecar = {
        "name": "inference",
        "image": inference_image,
        "restartPolicy": "Always",  # a native sidecar: up before, down after the evaluator
        "ports": [{"name": "http", "containerPort": INFERENCE_PORT}],
        "envFrom": [{"configMapRef": {"name": INFERENCE_CONFIG}}],
        "env": [*({"name": k, "value": v} for k, v in
                  {**serving, "MEDGO_INFERENCE_PORT": str(INFERENCE_PORT)}.items()),
                _api_key("MEDGO_INFERENCE_API_KEY")],  # vLLM answers /v1 only with it
        "startupProbe": {"httpGet": {"path": "/readyz", "port": "http"}, "periodSeconds": 10,
                         "failureThreshold": max(1, math.ceil(serve_timeout_s / 10))},
        "resources": {kind: {**values, **gpu} for kind, values in SIDECAR_RESOURCES.items()},
        "securityContext": _HARDENED,
        "volumeMounts": [{"name": "models", "mountPath": models, "readOnly": True},
                         {"name": "dshm", "mountPath": "/dev/shm"}, *scratch],
    }
    evaluator = {
        "name": "evaluate",
        "image": cluster.image,
        "command": command,
        "env": [{"name": "MEDGO_TRAINER_MODEL_DIR", "value": models},
                {"name": "MEDGO_TRAINER_DATA_DIR", "value": data},
                {"name": "HF_HUB_OFFLINE", "value": "1"},
                _api_key("MEDGO_TRAINER_INFERENCE_API_KEY")],  # the evaluator's copy
        "resources": EVALUATOR_RESOURCES,
        "securityContext": _HARDENED,
        "volumeMounts": [{"name": "models", "mountPath": models},  # writes the reports
                         {"name": "data", "mountPath": data, "readOnly": True}, *scratch],
    }
    pod = {
        "restartPolicy": "Never",
        "serviceAccountName": cluster.service_account,
        "automountServiceAccountToken": False,
        "securityContext": _POD_SECURITY,
        **k8s.gpu_placement(cluster),
        **k8s.scheduling(cluster),
        "initContainers": [sidecar],
        "containers": [evaluator],
        "volumes": [
            {"name": "models",
             "persistentVolumeClaim": {"claimName": cluster.checkpoints_pvc}},
            {"name": "data", "persistentVolumeClaim": {"claimName": cluster.data_pvc,
                                                       "readOnly": True}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": cluster.shm}},
            {"name": "cache", "emptyDir": {"sizeLimit": "4Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    return _batch_job(name, cluster, labels, pod, timeout_s)


class K8sCompute:
    """The loop's `Compute` on Kubernetes: submit, wait, read the model store."""

    def __init__(self, settings: TrainerSettings, opts: LoopOptions, api_client: Any,
                 cluster: k8s.ClusterSpec, *, train_timeout_s: float, eval_timeout_s: float,
                 poll_s: float = 30.0) -> None:
        self.settings, self.opts, self.api, self.cluster = settings, opts, api_client, cluster
        self.train_timeout_s, self.eval_timeout_s, self.poll_s = (
            train_timeout_s, eval_timeout_s, poll_s)

    def check(self) -> None:
        """Job names and deadlines; `--serve-set` is checked by the sidecar's launcher
        (there is no `medgo-inference` in the trainer image to dry-run here)."""
        name = self.opts.checkpoint_id or f"{self.opts.id_prefix}-dpo-00000000"
        try:
            k8s.check_name(name)
        except ValueError as exc:
            raise LoopError(f"the checkpoint id names its Kubernetes jobs: {exc}") from exc
        if self.eval_timeout_s <= self.opts.serve_timeout_s:
            raise LoopError(f"--eval-timeout {self.eval_timeout_s:.0f} s leaves no time to "
                            f"evaluate after --serve-timeout {self.opts.serve_timeout_s:.0f} s")

    def cluster_path(self, path: str | Path) -> str:
        """`path` on the model store as the training pods see it (under `/ckpt`)."""
        store = self.settings.model_dir.resolve()
        try:
            inside = Path(path).resolve().relative_to(store)
        except ValueError:
            raise LoopError(f"{path} is not on the model store {store} (PVC "
                            f"{self.cluster.checkpoints_pvc}), the only place the training "
                            "pods can read it from") from None
        return str(PurePosixPath(k8s.CKPT_MOUNT) / inside)

    def reference(self, baseline: Checkpoint) -> Path:
        """The baseline merged into its base by a Job, or the merge an earlier week made."""
        out = self.settings.model_dir / "checkpoints" / baseline.id / "reference"
        if (out / EXPORT_FILE).is_file():
            log.info("loop: reference policy %s already exported", out)
            return out
        name = f"{baseline.id}-ref"
        command = ["medgo-train", "export", "--base", baseline.base, "--adapter",
                   baseline.path, "--out", str(out), "--no-progress"]
        job = build_export_job(name, self.cluster, command=command,
                               model_dir=self.settings.model_dir, timeout_s=self.eval_timeout_s)
        self._run([job], "Job", name, self.eval_timeout_s + WAIT_GRACE_S)
        if not (out / EXPORT_FILE).is_file():
            raise LoopError(f"export Job {name} succeeded but {out} holds no finished export")
        return out

    def train(self, recipe: Recipe, checkpoint_id: str, run_dir: Path) -> dict[str, float]:
        recipe_file = resolve_recipe_path(self.opts.recipe)
        recipe_name = (recipe_file.stem if recipe_file.parent == RECIPES_DIR
                       else self.cluster_path(recipe_file))
        data = ",".join(self.cluster_path(p) for p in recipe.data.train)
        overrides = [*self.opts.overrides, f"base={self.cluster_path(recipe.base)}",
                     f"adapter={self.cluster_path(str(recipe.adapter))}", f"data.train=[{data}]"]
        if recipe.reference is not None:
            overrides.append(f"reference={self.cluster_path(recipe.reference)}")
        objects = k8s.build_job(recipe, recipe_name=recipe_name, name=checkpoint_id,
                                cluster=self.cluster, overrides=overrides,
                                out=self.cluster_path(run_dir))
        kind = objects[-1]["kind"]  # a TrainJob, or a PyTorchJob (cluster.job_api)
        self._run(objects, kind, checkpoint_id, self.train_timeout_s)
        try:
            return json.loads((run_dir / METRICS_FILE).read_text(encoding="utf-8"))["metrics"]
        except (OSError, ValueError, KeyError) as exc:
            raise LoopError(f"{kind} {checkpoint_id} succeeded but {run_dir} holds no "
                            f"finished run ({exc})") from exc

    def evaluate(self, baseline: Checkpoint, candidate: Checkpoint,
                 reports: dict[str, Path]) -> None:
        name = f"{candidate.id}-eval"
        adapters = {baseline.id: Path(baseline.path), candidate.id: Path(candidate.path)}
        job = build_eval_job(
            name, self.cluster, inference_image=self.settings.k8s_inference_image,
            serving=serving_env(candidate.base, adapters, self.opts),
            command=evaluate_command(self.opts, f"http://127.0.0.1:{INFERENCE_PORT}", reports),
            model_dir=self.settings.model_dir, data_dir=self.settings.data_dir,
            serve_timeout_s=self.opts.serve_timeout_s, timeout_s=self.eval_timeout_s)
        self._run([job], "Job", name, self.eval_timeout_s + WAIT_GRACE_S)
        missing = [str(p) for p in reports.values() if not p.is_file()]
        if missing:
            raise LoopError(f"evaluation Job {name} succeeded but wrote no {', '.join(missing)}")

    def _run(self, objects: list[dict[str, Any]], kind: str, name: str,
             timeout_s: float) -> None:
        namespace = self.cluster.namespace
        k8s.submit(objects, self.api)
        log.info("loop: %s %s submitted in %s; waiting for it (at most %.0f s)", kind, name,
                 namespace, timeout_s)
        k8s.wait_for_job(self.api, kind, name, namespace, timeout_s=timeout_s,
                         poll_s=self.poll_s)
