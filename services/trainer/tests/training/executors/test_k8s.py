"""executors/k8s.py and executors/k8s_loop.py: the rendered TrainJob (Kubeflow Trainer v2,
the default) and PyTorchJob, and the feedback loop's evaluation Job; submission and
waiting through the real kubernetes client against a recording API server that answers
with scripted job statuses (a fake at the one boundary this machine lacks: no cluster
runs here); the loop's k8s steps. One module, because both executors are tested against
the same recording server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors import k8s
from medgo_trainer.training.executors.k8s_loop import K8sCompute, build_eval_job
from medgo_trainer.training.loop.options import LoopError, LoopOptions
from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path
from medgo_trainer.training.registry import Checkpoint, Status


@pytest.fixture
def dpo_72b():
    return load_recipe(resolve_recipe_path("medgo-72b-dpo"), check_data=False)


def test_72b_pytorchjob_renders_8_nodes_of_8_a100s_with_pvcs_and_deepspeed(dpo_72b):
    cluster = k8s.ClusterSpec(image="registry.local/medgo/trainer:1.0", job_api="pytorchjob")
    configmap, job = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                                   cluster=cluster, overrides=["data.train=[/data/dpo.jsonl]"])

    assert configmap["kind"] == "ConfigMap"
    assert configmap["metadata"]["name"] == "dpo-week-48-deepspeed"
    assert json.loads(configmap["data"]["zero3.json"])["zero_optimization"]["stage"] == 3
    assert job["apiVersion"] == "kubeflow.org/v1" and job["kind"] == "PyTorchJob"
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "medgo-training"
    spec = job["spec"]
    assert spec["nprocPerNode"] == "8"
    replicas = spec["pytorchReplicaSpecs"]
    assert replicas["Master"]["replicas"] == 1 and replicas["Worker"]["replicas"] == 7
    pod = replicas["Worker"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["name"] == "pytorch"
    assert container["envFrom"] == [{"configMapRef": {"name": "training-nccl",
                                                      "optional": True}}]
    # TCP sockets: no RDMA device, no capability at all
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert set(container["resources"]["limits"]) == {"memory", "nvidia.com/gpu"}
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert (pod["priorityClassName"], pod["runtimeClassName"]) == ("medgo-training", "nvidia")
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"data": "medgo-data", "checkpoints": "medgo-checkpoints"}
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts["deepspeed"] == "/etc/medgo/deepspeed" and mounts["checkpoints"] == "/ckpt"
    command = container["command"]
    assert command[:3] == ["torchrun", "--nnodes=8", "--nproc_per_node=8"]
    assert command[5:10] == ["dpo", "--recipe", "medgo-72b-dpo", "--out", "/ckpt/dpo-week-48"]
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert sets == ["data.train=[/data/dpo.jsonl]", "trl.deepspeed=/etc/medgo/deepspeed/zero3.json",
                    "trl.resume_from_checkpoint=auto"]


def test_72b_trainjob_runs_on_the_runtime_with_8_nodes_of_8_a100s(dpo_72b):
    cluster = k8s.ClusterSpec(image="registry.local/medgo/trainer:1.0", rdma_resource="rdma/ib")
    configmap, job = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                                   cluster=cluster, overrides=["data.train=[/data/dpo.jsonl]"])

    assert configmap["metadata"]["name"] == "dpo-week-48-deepspeed"
    assert (job["apiVersion"], job["kind"]) == ("trainer.kubeflow.org/v1alpha1", "TrainJob")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "medgo-training"
    spec = job["spec"]
    assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org",
                                  "kind": "TrainingRuntime", "name": "medgo-torch-deepspeed"}
    assert "kueue.x-k8s.io/queue-name" not in spec["labels"]  # only the TrainJob is queued
    trainer = spec["trainer"]
    assert (trainer["numNodes"], trainer["numProcPerNode"]) == (8, 8)
    assert trainer["image"] == "registry.local/medgo/trainer:1.0"
    assert trainer["resourcesPerNode"]["limits"] == {"memory": "900Gi", "nvidia.com/gpu": 8,
                                                     "rdma/ib": "1"}
    # Trainer v2 sets PET_NNODES/PET_NPROC_PER_NODE/PET_NODE_RANK: no node flags here.
    command = trainer["command"]
    assert command[:6] == ["torchrun", "-m", "medgo_trainer.cli", "dpo", "--recipe",
                           "medgo-72b-dpo"]
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert sets == ["data.train=[/data/dpo.jsonl]", "trl.deepspeed=/etc/medgo/deepspeed/zero3.json",
                    "trl.resume_from_checkpoint=auto"]
    (override,) = spec["podSpecOverrides"]
    assert override["targetJobs"] == [{"name": "node"}]
    assert override["serviceAccountName"] == "medgo-trainer"
    assert override["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    claims = {v["name"]: v["persistentVolumeClaim"]["claimName"]
              for v in override["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {"data": "medgo-data", "checkpoints": "medgo-checkpoints"}
    (container,) = override["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert container["name"] == "node" and mounts["deepspeed"] == "/etc/medgo/deepspeed"


def test_cluster_spec_refuses_what_the_job_api_cannot_do():
    with pytest.raises(ValueError, match="job_api 'mpijob' is not one of trainjob, pytorchjob"):
        k8s.ClusterSpec(image="i", job_api="mpijob")
    with pytest.raises(ValueError, match=r"Volcano .* PyTorchJobs"):
        k8s.ClusterSpec(image="i", scheduler_name="volcano")
    settings = TrainerSettings(k8s_job_api="pytorchjob", k8s_image="reg/t:1",
                               k8s_node_resources={"example.com/fpga": "1"},
                               k8s_rdma_resource="rdma/ib")
    cluster = k8s.cluster_spec(settings, nodes=2)
    assert (cluster.job_api, cluster.image, cluster.nodes, cluster.node_resources,
            cluster.rdma_resource) == ("pytorchjob", "reg/t:1", 2, {"example.com/fpga": "1"},
                                       "rdma/ib")


def test_an_rdma_pytorchjob_adds_the_device_and_ipc_lock_only(dpo_72b):
    """InfiniBand on a PyTorchJob: every replica requests the RDMA device and keeps
    IPC_LOCK (RDMA pins memory), every other capability still dropped."""
    cluster = k8s.ClusterSpec(image="i", job_api="pytorchjob",
                              rdma_resource="rdma/rdma_shared_device_a")
    _, job = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-week-48",
                           cluster=cluster)
    for replica in job["spec"]["pytorchReplicaSpecs"].values():
        (container,) = replica["template"]["spec"]["containers"]
        assert container["securityContext"] == {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"], "add": ["IPC_LOCK"]}}
        for kind in ("requests", "limits"):
            assert container["resources"][kind]["rdma/rdma_shared_device_a"] == "1"
        assert container["envFrom"][0]["configMapRef"]["name"] == "training-nccl"


def test_a_malformed_rdma_resource_is_refused():
    """Bad input: a resource name the API server would reject fails at settings time."""
    with pytest.raises(ValueError, match="k8s_rdma_resource"):
        TrainerSettings(k8s_rdma_resource="rdma shared device")


def test_build_job_refuses_bad_names(dpo_72b):
    with pytest.raises(ValueError, match="DNS label"):
        k8s.build_job(dpo_72b, recipe_name="x", name="Bad_Name",
                      cluster=k8s.ClusterSpec(image="i"))


class _Recorder(BaseHTTPRequestHandler):
    """FAKE Kubernetes API server (boundary: no cluster here): records each request the
    real client sends and answers like the API server does - 201 + the object or 409 to
    a create, and to a read the next of `answers` (status, body), the last one repeated:
    a job's status conditions as the training operator and the Job controller set them.
    `on_create` stands in for the pods: it writes what a job would leave on the volume."""

    requests: ClassVar[list[dict]] = []
    conflict_on: ClassVar[str | None] = None
    answers: ClassVar[list[tuple[int, dict]]] = []
    on_create: ClassVar[Callable[[dict], None] | None] = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"method": "POST", "path": self.path, "body": body,
                                    "content_type": self.headers["Content-Type"]})
        if body["metadata"]["name"] == type(self).conflict_on:
            plural = self.path.split("?")[0].rsplit("/", 1)[1]
            message = f'{plural} "{body["metadata"]["name"]}" already exists'
            self._answer(409, {"kind": "Status", "status": "Failure", "code": 409,
                               "reason": "AlreadyExists", "message": message})
            return
        if type(self).on_create is not None:
            type(self).on_create(body)
        self._answer(201, {**body, "metadata": {**body["metadata"], "uid": "u-1"}})

    def do_GET(self) -> None:
        type(self).requests.append({"method": "GET", "path": self.path})
        answers = type(self).answers
        self._answer(*(answers.pop(0) if len(answers) > 1 else answers[0]))

    def _answer(self, status: int, answer: dict) -> None:
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass


@pytest.fixture
def api_client() -> Iterator:
    from kubernetes import client

    _Recorder.requests = []
    _Recorder.conflict_on = None
    _Recorder.answers = []
    _Recorder.on_create = None
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    with client.ApiClient(config) as api:
        yield api
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize(("job_api", "path"), [
    ("trainjob", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs?dryRun=All"),
    ("pytorchjob", "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs?dryRun=All"),
])
def test_submit_sends_the_objects_through_the_real_client(dpo_72b, api_client, job_api, path):
    objects = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-1",
                            cluster=k8s.ClusterSpec(image="img", namespace="ml",
                                                    job_api=job_api))
    created = k8s.submit(objects, api_client, dry_run=True)

    paths = [r["path"] for r in _Recorder.requests]
    assert paths == ["/api/v1/namespaces/ml/configmaps?dryRun=All", path]
    assert _Recorder.requests[1]["body"] == objects[1]
    assert created[1]["metadata"]["uid"] == "u-1"


def test_submit_reports_the_api_servers_refusal(dpo_72b, api_client):
    _Recorder.conflict_on = "dpo-1"
    objects = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-1",
                            cluster=k8s.ClusterSpec(image="img"))
    expected = 'TrainJob dpo-1 in medgo failed: 409 trainjobs "dpo-1" already exists'
    with pytest.raises(k8s.SubmitError, match=expected):
        k8s.submit(objects, api_client)


def test_build_job_writes_where_it_is_told(dpo_72b):
    *_, job = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-1",
                            cluster=k8s.ClusterSpec(image="img"), out="/ckpt/checkpoints/c/run")
    command = job["spec"]["trainer"]["command"]
    assert command[command.index("--out") + 1] == "/ckpt/checkpoints/c/run"


def _job(kind: str, *conditions: tuple[str, str, str]) -> dict:
    """A job as the API server returns it, with `status.conditions`."""
    api = {"TrainJob": "trainer.kubeflow.org/v1alpha1", "PyTorchJob": "kubeflow.org/v1",
           "Job": "batch/v1"}[kind]
    return {"apiVersion": api, "kind": kind, "metadata": {"name": "j", "namespace": "ml"},
            "status": {"conditions": [
                {"type": t, "status": "True", "reason": r, "message": m,
                 "lastTransitionTime": "2026-12-01T02:00:00Z"} for t, r, m in conditions]}}


def test_wait_follows_a_pytorchjob_to_succeeded(api_client):
    _Recorder.answers = [
        (200, _job("PyTorchJob")),  # just created; Kueue has not admitted it yet
        (200, _job("PyTorchJob", ("Created", "", ""), ("Running", "", ""))),
        (503, {"kind": "Status", "code": 503, "message": "etcd leader changed"}),  # a blip
        (200, _job("PyTorchJob", ("Created", "", ""), ("Succeeded", "JobSucceeded", "done"))),
    ]
    condition = k8s.wait_for_job(api_client, "PyTorchJob", "dpo-1", "ml", timeout_s=30,
                                 poll_s=0.01)
    assert (condition["type"], condition["reason"]) == ("Succeeded", "JobSucceeded")
    assert [r["path"] for r in _Recorder.requests] == [
        "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs/dpo-1"] * 4


def test_wait_follows_a_trainjob_to_complete_and_names_its_pods_on_failure(api_client):
    _Recorder.answers = [(200, _job("TrainJob", ("Created", "", ""))),
                         (200, _job("TrainJob", ("Complete", "JobsCompleted", "done")))]
    condition = k8s.wait_for_job(api_client, "TrainJob", "dpo-1", "ml", timeout_s=30,
                                 poll_s=0.01)
    assert condition["type"] == "Complete"
    assert {r["path"] for r in _Recorder.requests} == {
        "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/trainjobs/dpo-1"}
    _Recorder.answers = [(200, _job("TrainJob", ("Failed", "JobsFailed", "node-0 failed")))]
    with pytest.raises(k8s.JobFailedError, match=r"TrainJob dpo-1 in ml failed \(JobsFailed: "
                       r"node-0 failed\); see .* logs -l jobset.sigs.k8s.io/jobset-name=dpo-1"):
        k8s.wait_for_job(api_client, "TrainJob", "dpo-1", "ml", timeout_s=30, poll_s=0.01)


def test_wait_reports_a_failed_job_with_its_reason_and_logs(api_client):
    _Recorder.answers = [(200, _job("Job", ("Failed", "BackoffLimitExceeded",
                                             "Job has reached the specified backoff limit")))]
    with pytest.raises(k8s.JobFailedError) as failed:
        k8s.wait_for_job(api_client, "Job", "c-eval", "ml", timeout_s=30, poll_s=0.01)
    assert str(failed.value).startswith(
        "Job c-eval in ml failed (BackoffLimitExceeded: Job has reached the specified "
        "backoff limit); see kubectl -n ml describe job c-eval; kubectl -n ml logs "
        "-l medgo.io/job=c-eval --all-containers")
    assert _Recorder.requests[0]["path"] == "/apis/batch/v1/namespaces/ml/jobs/c-eval"


def test_wait_gives_up_after_its_timeout_and_leaves_the_job(api_client):
    _Recorder.answers = [(200, _job("Job"))]  # never finishes
    started = time.monotonic()
    with pytest.raises(k8s.JobFailedError, match=r"Job c-eval in ml did not finish within 0.5 s; "
                                                 r"it is left as it is: kubectl"):
        k8s.wait_for_job(api_client, "Job", "c-eval", "ml", timeout_s=0.5, poll_s=0.05)
    assert 0.5 <= time.monotonic() - started < 5
    assert len(_Recorder.requests) >= 5
    assert all(r["method"] == "GET" for r in _Recorder.requests)  # nothing deleted


@pytest.mark.parametrize(("status", "error", "message"), [
    (404, k8s.JobFailedError, "PyTorchJob dpo-1 in ml is gone"),
    (403, k8s.SubmitError, 'reading PyTorchJob dpo-1 in ml failed: 403 pytorchjobs "dpo-1" '
                           "is forbidden"),
])
def test_wait_stops_on_client_errors(api_client, status, error, message):
    _Recorder.answers = [(status, {"kind": "Status", "code": status,
                                   "message": 'pytorchjobs "dpo-1" is forbidden'})]
    with pytest.raises(error, match=message):
        k8s.wait_for_job(api_client, "PyTorchJob", "dpo-1", "ml", timeout_s=30, poll_s=0.01)
    assert len(_Recorder.requests) == 1


def _eval_job(tmp_path):
    cluster = k8s.ClusterSpec(image="reg/trainer:1", namespace="ml", gpus_per_node=8)
    return cluster, build_eval_job(
        "c-eval", cluster, inference_image="reg/inference:1",
        serving={"MEDGO_INFERENCE_BASE_MODEL": "/m/base", "MEDGO_INFERENCE_ADAPTERS": "a=/m/a"},
        command=["medgo-train", "loop", "evaluate"], model_dir=tmp_path / "models",
        data_dir=tmp_path / "data", serve_timeout_s=1800, timeout_s=14400)


def test_eval_job_is_a_gpu_pod_with_a_vllm_sidecar_on_the_shared_volumes(tmp_path):
    cluster, job = _eval_job(tmp_path)
    training_pod = k8s.build_job(load_recipe(resolve_recipe_path("medgo-72b-dpo"),
                                             check_data=False), recipe_name="r", name="t",
                                 cluster=cluster)[-1]["spec"]["podSpecOverrides"][0]
    assert (job["apiVersion"], job["kind"]) == ("batch/v1", "Job")
    assert job["spec"]["backoffLimit"] == 0 and job["spec"]["activeDeadlineSeconds"] == 14400
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "medgo-training"
    pod = job["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == training_pod["nodeSelector"]
    assert pod["tolerations"] == training_pod["tolerations"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False and pod["restartPolicy"] == "Never"

    (sidecar,) = pod["initContainers"]
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar
    assert sidecar["image"] == "reg/inference:1"
    assert sidecar["resources"]["limits"]["nvidia.com/gpu"] == "8"
    assert sidecar["resources"]["requests"]["nvidia.com/gpu"] == "8"
    assert sidecar["envFrom"] == [{"configMapRef": {"name": "inference-config"}}]
    env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert env == {"MEDGO_INFERENCE_BASE_MODEL": "/m/base", "MEDGO_INFERENCE_ADAPTERS": "a=/m/a",
                   "MEDGO_INFERENCE_PORT": "8001", "MEDGO_INFERENCE_API_KEY": None}
    # vLLM requires the key and the evaluator presents it, both from the same Secret
    key_ref = {"secretKeyRef": {"name": "inference-api-key", "key": "token"}}
    assert {e["name"]: e.get("valueFrom") for e in sidecar["env"]}[
        "MEDGO_INFERENCE_API_KEY"] == key_ref
    assert (pod["priorityClassName"], pod["runtimeClassName"]) == ("medgo-training", "nvidia")
    assert sidecar["startupProbe"]["httpGet"]["path"] == "/readyz"
    assert sidecar["startupProbe"]["failureThreshold"] * 10 == 1800

    (evaluator,) = pod["containers"]
    assert evaluator["image"] == "reg/trainer:1"
    assert evaluator["command"] == ["medgo-train", "loop", "evaluate"]
    assert "nvidia.com/gpu" not in evaluator["resources"]["limits"]
    claims = {v["name"]: v["persistentVolumeClaim"] for v in pod["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims == {"models": {"claimName": "medgo-checkpoints"},
                      "data": {"claimName": "medgo-data", "readOnly": True}}
    models, data = str(tmp_path / "models"), str(tmp_path / "data")

    def mounts(container: dict) -> dict:
        return {m["name"]: (m["mountPath"], m.get("readOnly", False))
                for m in container["volumeMounts"]}

    assert mounts(sidecar)["models"] == (models, True)
    assert mounts(evaluator)["models"] == (models, False)  # it writes the reports
    assert mounts(evaluator)["data"] == (data, True)
    for container in (sidecar, evaluator):
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    evaluator_env = {e["name"]: e.get("value") for e in evaluator["env"]}
    assert {e["name"]: e.get("valueFrom") for e in evaluator["env"]}[
        "MEDGO_TRAINER_INFERENCE_API_KEY"] == key_ref
    assert evaluator_env["MEDGO_TRAINER_MODEL_DIR"] == models
    assert evaluator_env["MEDGO_TRAINER_DATA_DIR"] == data


@dataclass
class _Store:
    """A model store as the loop leaves it before step 3: base, baseline, export."""

    settings: TrainerSettings
    base: Path
    sft: Path
    work: Path

    @property
    def run(self) -> Path:
        return self.work / "run"


CHECKPOINT = "medgo-72b-dpo-1a2b3c4d"


@pytest.fixture
def store(tmp_path) -> _Store:
    models = tmp_path / "models"
    base, sft = models / "medgo-72b" / "base", models / "medgo-72b" / "adapters" / "sft"
    work = models / "checkpoints" / CHECKPOINT
    for directory in (base, sft, work):
        directory.mkdir(parents=True)
    (sft / "adapter_config.json").write_text(json.dumps({"r": 16}))
    (work / "dpo.jsonl").write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n')
    settings = TrainerSettings(model_dir=models, data_dir=tmp_path / "data",
                               k8s_inference_image="reg/inference:1")
    return _Store(settings, base, sft, work)


def _compute(store: _Store, api_client, job_api: str = "trainjob", **opts) -> K8sCompute:
    return K8sCompute(store.settings, LoopOptions(recipe="medgo-72b-dpo", **opts), api_client,
                      k8s.ClusterSpec(image="reg/trainer:1", namespace="ml", job_api=job_api),
                      train_timeout_s=30, eval_timeout_s=3600, poll_s=0.01)


#: job API → (kind, its success condition, the path it is read at, where its command is)
_JOB_APIS = {
    "trainjob": ("TrainJob", "Complete", "/apis/trainer.kubeflow.org/v1alpha1/namespaces/ml/"
                 "trainjobs", lambda job: job["spec"]["trainer"]["command"]),
    "pytorchjob": ("PyTorchJob", "Succeeded", "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs",
                   lambda job: job["spec"]["pytorchReplicaSpecs"]["Master"]["template"][
                       "spec"]["containers"][0]["command"]),
}


@pytest.mark.parametrize("job_api", list(_JOB_APIS))
def test_k8s_training_is_a_job_on_the_model_store_waited_for(store, api_client, job_api):
    kind, done, path, command_of = _JOB_APIS[job_api]

    def pods_train(obj: dict) -> None:  # what the job's pods leave on the volume
        if obj["kind"] == kind:
            store.run.mkdir()
            (store.run / "metrics.json").write_text(json.dumps(
                {"metrics": {"train_loss": 0.42, "serving_rank": 64}, "data_hash": "d"}))

    _Recorder.on_create = pods_train
    _Recorder.answers = [(200, _job(kind, ("Running", "", ""))),
                         (200, _job(kind, (done, "JobSucceeded", "")))]
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [
        f"base={store.base}", f"adapter={store.sft}", f"data.train=[{store.work}/dpo.jsonl]",
        f"reference={store.work}/reference"], check_data=False)
    compute = _compute(store, api_client, job_api, overrides=("trl.num_train_epochs=1",))

    assert compute.train(recipe, CHECKPOINT, store.run) == {"train_loss": 0.42,
                                                           "serving_rank": 64}
    created = [r["body"] for r in _Recorder.requests if r["method"] == "POST"]
    assert [o["kind"] for o in created] == ["ConfigMap", kind]
    command = command_of(created[1])
    assert command[command.index("--recipe") + 1] == "medgo-72b-dpo"
    assert command[command.index("--out") + 1] == f"/ckpt/checkpoints/{CHECKPOINT}/run"
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    assert sets[:5] == ["trl.num_train_epochs=1", "base=/ckpt/medgo-72b/base",
                        "adapter=/ckpt/medgo-72b/adapters/sft",
                        f"data.train=[/ckpt/checkpoints/{CHECKPOINT}/dpo.jsonl]",
                        f"reference=/ckpt/checkpoints/{CHECKPOINT}/reference"]
    reads = [r["path"] for r in _Recorder.requests if r["method"] == "GET"]
    assert reads == [f"{path}/{CHECKPOINT}"] * 2


def test_k8s_training_refuses_inputs_the_pods_cannot_see(store, api_client, tmp_path):
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [
        f"base={tmp_path / 'elsewhere'}", f"adapter={store.sft}",
        f"data.train=[{store.work}/dpo.jsonl]"], check_data=False)
    with pytest.raises(LoopError, match=r"elsewhere is not on the model store .*models \(PVC "
                                        r"medgo-checkpoints\)"):
        _compute(store, api_client).train(recipe, CHECKPOINT, store.run)
    assert _Recorder.requests == []


def test_k8s_training_that_left_no_run_is_an_error(store, api_client):
    _Recorder.answers = [(200, _job("TrainJob", ("Complete", "", "")))]
    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [
        f"base={store.base}", f"adapter={store.sft}", f"data.train=[{store.work}/dpo.jsonl]",
        f"reference={store.work}/reference"], check_data=False)
    with pytest.raises(LoopError, match=f"TrainJob {CHECKPOINT} succeeded but .* holds no "
                                        "finished run"):
        _compute(store, api_client).train(recipe, CHECKPOINT, store.run)


def test_k8s_reference_policy_is_merged_once_by_a_job_outside_training(store, api_client):
    """Under ZeRO-3 the DPO stage cannot merge the SFT adapter into a partitioned base:
    the loop exports the baseline first, as a Job on the model store, and reuses it."""
    baseline = Checkpoint(id="medgo-72b-sft", parent=None, base=str(store.base), stage="sft",
                          path=str(store.sft), data_sha256="d", recipe={}, metrics={},
                          created_at="2026-12-01T00:00:00+00:00", status=Status.promoted)
    out = store.settings.model_dir / "checkpoints" / baseline.id / "reference"

    def pod_exports(obj: dict) -> None:
        out.mkdir(parents=True)
        (out / "export.json").write_text("{}")

    _Recorder.on_create = pod_exports
    _Recorder.answers = [(200, _job("Job", ("Complete", "", "")))]
    compute = _compute(store, api_client)
    assert compute.reference(baseline) == out

    (created,) = [r["body"] for r in _Recorder.requests if r["method"] == "POST"]
    assert created["metadata"]["name"] == "medgo-72b-sft-ref"
    pod = created["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["medgo-train", "export", "--base", str(store.base),
                                    "--adapter", str(store.sft), "--out", str(out),
                                    "--no-progress"]
    assert "nvidia.com/gpu" not in container["resources"]["requests"]  # a merge, on CPUs
    assert pod["priorityClassName"] == "medgo-training"
    assert created["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "medgo-training"

    _Recorder.requests.clear()
    assert compute.reference(baseline) == out  # the next week reuses it: no new Job
    assert _Recorder.requests == []

    recipe = load_recipe(resolve_recipe_path("medgo-72b-dpo"), [
        f"base={store.base}", f"adapter={store.sft}", f"data.train=[{store.work}/dpo.jsonl]",
        f"reference={out}"], check_data=False)
    _Recorder.on_create = None
    _Recorder.answers = [(200, _job("TrainJob", ("Complete", "", "")))]
    with pytest.raises(LoopError):  # no run left behind; the command is what matters here
        compute.train(recipe, CHECKPOINT, store.run)
    (job,) = [r["body"] for r in _Recorder.requests
              if r["method"] == "POST" and r["body"]["kind"] == "TrainJob"]
    sets = job["spec"]["trainer"]["command"]
    assert "reference=/ckpt/checkpoints/medgo-72b-sft/reference" in sets


def _checkpoints(store: _Store) -> tuple[Checkpoint, Checkpoint]:
    serving = store.run / "serving"
    serving.mkdir(parents=True)
    (serving / "adapter_config.json").write_text(json.dumps({"r": 64}))

    def checkpoint(cid: str, path: Path) -> Checkpoint:
        return Checkpoint(id=cid, parent=None, base=str(store.base), stage="dpo",
                          path=str(path), data_sha256="d", recipe={}, metrics={},
                          created_at="2026-12-01T00:00:00+00:00", status=Status.candidate)

    return checkpoint("medgo-72b-sft", store.sft), checkpoint(CHECKPOINT, serving)


@pytest.mark.parametrize("writes_reports", [True, False])
def test_k8s_evaluation_is_a_job_whose_evaluator_writes_both_reports(store, api_client,
                                                                     writes_reports):
    from medgo_trainer.cli import build_parser

    baseline, candidate = _checkpoints(store)
    reports = {baseline.id: store.work / "eval" / "baseline.json",
               candidate.id: Path(candidate.path) / "eval-report.json"}

    def evaluator_runs(obj: dict) -> None:
        for report in reports.values() if writes_reports else ():
            report.parent.mkdir(parents=True, exist_ok=True)
            report.write_text("{}")

    _Recorder.on_create = evaluator_runs
    _Recorder.answers = [(200, _job("Job", ("Complete", "", "")))]
    compute = _compute(store, api_client, tasks=("safety",), limit=5, max_tokens=16)
    if writes_reports:
        compute.evaluate(baseline, candidate, reports)
    else:
        with pytest.raises(LoopError, match=f"evaluation Job {CHECKPOINT}-eval succeeded but "
                                            "wrote no .*baseline.json"):
            compute.evaluate(baseline, candidate, reports)

    (created,) = [r for r in _Recorder.requests if r["method"] == "POST"]
    assert created["path"] == "/apis/batch/v1/namespaces/ml/jobs"
    pod = created["body"]["spec"]["template"]["spec"]
    env = {e["name"]: e.get("value") for e in pod["initContainers"][0]["env"]}
    assert env["MEDGO_INFERENCE_BASE_MODEL"] == str(store.base)
    assert env["MEDGO_INFERENCE_ADAPTERS"] == (f"medgo-72b-sft={store.sft},"
                                               f"{CHECKPOINT}={candidate.path}")
    assert env["MEDGO_INFERENCE_MAX_LORA_RANK"] == "64"
    assert pod["initContainers"][0]["image"] == "reg/inference:1"
    args = build_parser().parse_args(pod["containers"][0]["command"][1:])
    assert (args.command, args.loop_step, args.endpoint) == ("loop", "evaluate",
                                                             "http://127.0.0.1:8001")
    assert args.models == [f"{m}={r}" for m, r in reports.items()]
    assert (args.tasks, args.limit, args.max_tokens) == ("safety", 5, 16)
    assert [r["path"] for r in _Recorder.requests if r["method"] == "GET"] == [
        f"/apis/batch/v1/namespaces/ml/jobs/{CHECKPOINT}-eval"]


def test_k8s_loop_refuses_ids_that_cannot_name_jobs(store, api_client):
    with pytest.raises(LoopError, match="the checkpoint id names its Kubernetes jobs"):
        _compute(store, api_client, checkpoint_id="Medgo_DPO").check()
    with pytest.raises(LoopError, match="leaves no time to evaluate"):
        _compute(store, api_client, serve_timeout_s=7200).check()
