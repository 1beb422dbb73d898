"""Executors: the local command and process control; the rendered PyTorchJob; submission
through the real kubernetes client to a recording API server (a fake at the one boundary
this machine lacks: no cluster runs here)."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest
from medgo_trainer.executors import k8s, local
from medgo_trainer.recipe import load_recipe, resolve_recipe_path


def test_local_command_single_process_and_torchrun(tmp_path):
    single = local.build_command("dpo", "medgo-tiny-dpo", tmp_path, ["trl.max_steps=3"])
    assert single == [sys.executable, "-m", "medgo_trainer.cli", "dpo", "--recipe",
                      "medgo-tiny-dpo", "--out", str(tmp_path), "--set", "trl.max_steps=3"]
    multi = local.build_command("sft", "r.yaml", tmp_path, nproc=4)
    assert multi[:6] == [sys.executable, "-m", "torch.distributed.run", "--standalone",
                         "--nproc_per_node=4", "-m"]
    assert multi[6:8] == ["medgo_trainer.cli", "sft"]
    with pytest.raises(ValueError, match="unknown stage 'rlhf'"):
        local.build_command("rlhf", "r.yaml", tmp_path)


def test_local_job_logs_progress_and_cancels_its_process_group(tmp_path):
    script = ("import sys, time\n"
              "sys.stderr.write('Map: 100%|##| 9/9 [00:00]\\n')\n"
              "sys.stderr.write('\\r 40%|####  | 2/5 [00:01<00:02]'); sys.stderr.flush()\n"
              "time.sleep(300)\n")
    log = tmp_path / "job.log"
    handle, proc = local.start([sys.executable, "-c", script], log)
    try:
        while local.progress(log) is None and proc.poll() is None:
            time.sleep(0.1)
        assert local.progress(log) == (2, 5)  # the training bar, not the "Map:" one
        assert "Map: 100%" in local.read_log(log)
        assert local.cancel(handle.pid) is True
        assert proc.wait(timeout=30) == -15  # SIGTERM
    finally:
        proc.kill()
    assert local.cancel(handle.pid) is False
    assert not local.is_alive(handle.pid)


@pytest.fixture
def dpo_72b():
    return load_recipe(resolve_recipe_path("medgo-72b-dpo"), check_data=False)


def test_72b_job_renders_8_nodes_of_8_a100s_with_pvcs_and_deepspeed(dpo_72b):
    cluster = k8s.ClusterSpec(image="registry.local/medgo/trainer:1.0")
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
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert pod["nodeSelector"] == {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    assert pod["tolerations"][0]["key"] == "nvidia.com/gpu"
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


def test_build_job_refuses_bad_names(dpo_72b):
    with pytest.raises(ValueError, match="DNS label"):
        k8s.build_job(dpo_72b, recipe_name="x", name="Bad_Name",
                      cluster=k8s.ClusterSpec(image="i"))


class _Recorder(BaseHTTPRequestHandler):
    """FAKE Kubernetes API server (boundary: no cluster here): records each request the
    real client sends and answers like the API server does (201 + the object, or 409)."""

    requests: ClassVar[list[dict]] = []
    conflict_on: ClassVar[str | None] = None

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body,
                                    "content_type": self.headers["Content-Type"]})
        if body["metadata"]["name"] == type(self).conflict_on:
            message = f'pytorchjobs "{body["metadata"]["name"]}" already exists'
            status, answer = 409, {"kind": "Status", "status": "Failure", "code": 409,
                                   "reason": "AlreadyExists", "message": message}
        else:
            status, answer = 201, {**body, "metadata": {**body["metadata"], "uid": "u-1"}}
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
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = client.Configuration(host=f"http://127.0.0.1:{server.server_address[1]}")
    with client.ApiClient(config) as api:
        yield api
    server.shutdown()
    server.server_close()


def test_submit_sends_the_objects_through_the_real_client(dpo_72b, api_client):
    objects = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-1",
                            cluster=k8s.ClusterSpec(image="img", namespace="ml"))
    created = k8s.submit(objects, api_client, dry_run=True)

    paths = [r["path"] for r in _Recorder.requests]
    assert paths == ["/api/v1/namespaces/ml/configmaps?dryRun=All",
                     "/apis/kubeflow.org/v1/namespaces/ml/pytorchjobs?dryRun=All"]
    assert _Recorder.requests[1]["body"] == objects[1]
    assert created[1]["metadata"]["uid"] == "u-1"


def test_submit_reports_the_api_servers_refusal(dpo_72b, api_client):
    _Recorder.conflict_on = "dpo-1"
    objects = k8s.build_job(dpo_72b, recipe_name="medgo-72b-dpo", name="dpo-1",
                            cluster=k8s.ClusterSpec(image="img"))
    expected = 'PyTorchJob dpo-1 in medgo failed: 409 pytorchjobs "dpo-1" already exists'
    with pytest.raises(k8s.SubmitError, match=expected):
        k8s.submit(objects, api_client)
