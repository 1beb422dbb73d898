"""Job API: real jobs through the local executor, persisted across restarts, auth closed."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from medgo_trainer.api.app import JOBS_DB, create_app
from medgo_trainer.api.store import JobStore
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.executors import local

AUTH = {"Authorization": "Bearer s3cret"}
TEXTS = ["高血压患者应规律服药，低盐饮食，定期复查血压。", "糖尿病需要控制饮食，监测血糖。"] * 8


@pytest.fixture(scope="module")
def tiny_inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tokenizer directory and a text file: enough for a from-scratch pretrain job.
    `root` is the API's model directory, so the job API lets a recipe name them."""
    from medgo_trainer.training.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("api-inputs")
    train_tokenizer(TEXTS, vocab_size=300).save_pretrained(root / "tok")
    data = root / "text.jsonl"
    data.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in TEXTS))
    return {"root": root, "tok": root / "tok", "data": data}


def _job(tiny_inputs: dict[str, Path], max_steps: int) -> dict:
    """The packaged medgo-tiny-pretrain recipe, shrunk by overrides to a micro model."""
    return {"stage": "pretrain", "recipe": "medgo-tiny-pretrain", "overrides": [
        f"base={tiny_inputs['tok']}", f"data.train=[{tiny_inputs['data']}]", "data.eval=[]",
        "model.hidden_size=32", "model.intermediate_size=64", "model.num_hidden_layers=1",
        "model.num_attention_heads=2", "model.num_key_value_heads=1",
        "trl.per_device_train_batch_size=2", "trl.max_length=32", "trl.logging_steps=1",
        f"trl.max_steps={max_steps}",
    ]}


@pytest.fixture
def settings(tmp_path: Path, tiny_inputs: dict[str, Path]) -> TrainerSettings:
    return TrainerSettings(service_tokens={"ops": "s3cret"}, jobs_dir=tmp_path / "jobs",
                           model_dir=tiny_inputs["root"])


@pytest.fixture
def client(settings: TrainerSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _wait(client: TestClient, job_id: str, until: set[str], bound_s: float = 300) -> dict:
    """Poll until the job reaches a status in `until` (the bound only prevents a hang)."""
    deadline = time.monotonic() + bound_s
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}", headers=AUTH).json()
        if job["status"] in until or (job.get("progress") and "progress" in until):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} never reached {until}")


def test_a_job_runs_to_completion_and_survives_a_restart(client, settings, tiny_inputs):
    created = client.post("/v1/jobs", json=_job(tiny_inputs, max_steps=2), headers=AUTH)
    assert created.status_code == 201, created.text
    job = created.json()
    assert job["status"] == "running" and job["submitted_by"] == "ops"

    done = _wait(client, job["id"], {"succeeded", "failed"})
    logs = client.get(f"/v1/jobs/{job['id']}/logs", headers=AUTH).text
    assert done["status"] == "succeeded", logs[-2000:]
    assert done["exit_code"] == 0
    assert (Path(done["out_dir"]) / "model.safetensors").is_file()
    assert json.loads((Path(done["out_dir"]) / "metrics.json").read_text())["metrics"]
    assert done["progress"] == {"step": 2, "total": 2}
    metrics = client.get("/metrics").text
    assert 'medgo_trainer_jobs_submitted_total{stage="pretrain"} 1.0' in metrics

    with TestClient(create_app(settings)) as restarted:  # a new process, same job database
        again = restarted.get(f"/v1/jobs/{job['id']}", headers=AUTH).json()
    assert again["status"] == "succeeded" and again["out_dir"] == done["out_dir"]


def test_cancel_stops_the_process_group_and_frees_the_slot(client, tiny_inputs):
    job = client.post("/v1/jobs", json=_job(tiny_inputs, max_steps=100_000), headers=AUTH).json()
    busy = client.post("/v1/jobs", json=_job(tiny_inputs, max_steps=2), headers=AUTH)
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "too_many_jobs"
    assert busy.headers["retry-after"] == "60"

    _wait(client, job["id"], {"progress"})  # training has really started
    cancelled = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    store = JobStore(client.app.state.settings.jobs_dir / JOBS_DB)
    assert not local.is_alive(store.get(job_id=job["id"]).pid)
    again = client.post(f"/v1/jobs/{job['id']}/cancel", headers=AUTH)
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_not_running"


def test_a_job_lost_in_a_restart_is_marked_interrupted(settings, tmp_path):
    gone = subprocess.Popen(["true"])
    gone.wait()
    store = JobStore(settings.jobs_dir / JOBS_DB)
    store.insert(job_id="lost", stage="dpo", recipe="medgo-tiny-dpo", overrides=[],
                 pid=gone.pid, out_dir=tmp_path / "out", log_path=tmp_path / "job.log",
                 submitted_by="ops")
    with TestClient(create_app(settings)):
        pass  # start-up reconciles running jobs
    assert store.get(job_id="lost").status.value == "interrupted"


def test_invalid_jobs_are_refused_before_anything_runs(client, settings, tiny_inputs):
    bad_key = _job(tiny_inputs, 2)
    bad_key["overrides"].append("trl.learning_rat=1")  # off the allowlist (test_policy.py)
    response = client.post("/v1/jobs", json=bad_key, headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["param"] == "overrides" and "learning_rat" in error["message"]

    bad_value = _job(tiny_inputs, 2)
    bad_value["overrides"].append("data.max_train_samples=0")
    response = client.post("/v1/jobs", json=bad_value, headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_recipe" and "max_train_samples" in error["message"]

    wrong_stage = {**_job(tiny_inputs, 2), "stage": "sft"}
    response = client.post("/v1/jobs", json=wrong_stage, headers=AUTH)
    assert response.status_code == 422
    assert "is for stage pretrain, not sft" in response.json()["error"]["message"]

    response = client.post("/v1/jobs", json={"stage": "rlhf", "recipe": "x"}, headers=AUTH)
    assert response.status_code == 422 and response.json()["error"]["param"] == "stage"
    assert list(settings.jobs_dir.glob("*/job.log")) == []


def test_a_recipe_name_the_os_refuses_is_refused_not_a_server_error(client, settings):
    """Found by test_schemathesis.py: a 512-character recipe name raised ENAMETOOLONG
    from `Path.exists()` (500). Recipe names are now at most 128 characters
    (`JobCreate.recipe`), so the body is refused before any lookup."""
    for stage, recipe in (("sft", "x" * 512), ("build-sft", "x" * 512),
                          ("dpo", "x" * 300 + ".yaml")):
        response = client.post("/v1/jobs", json={"stage": stage, "recipe": recipe},
                               headers=AUTH)
        assert response.status_code == 422, (stage, response.text)
        assert response.json()["error"]["code"] == "invalid_value"
    assert list(settings.jobs_dir.glob("*/job.log")) == []


#: The packaged default mixture with every source capped small, addressed by name.
SMALL_MIXTURE = ["sources.dialogues.max_examples=30", "sources.drugs.weight=0.1",
                 "sources.complaints.max_examples=20", "sources.cblue.max_examples=30",
                 "sources.safety.max_examples=40"]


def test_build_sft_runs_as_a_job_like_a_stage(client, settings):
    body = {"stage": "build-sft", "recipe": "sft-mixture-default", "overrides": SMALL_MIXTURE}
    created = client.post("/v1/jobs", json=body, headers=AUTH)
    assert created.status_code == 201, created.text
    assert created.json()["stage"] == "build-sft"

    done = _wait(client, created.json()["id"], {"succeeded", "failed"})
    logs = client.get(f"/v1/jobs/{done['id']}/logs", headers=AUTH).text
    assert done["status"] == "succeeded" and done["exit_code"] == 0, logs[-2000:]
    assert done["progress"] == {"step": 5, "total": 5}  # one step per source
    out = Path(done["out_dir"])
    sheet = json.loads((out / "datasheet.json").read_text(encoding="utf-8"))
    rows = (out / "sft.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == sheet["examples"] and (out / "DATASHEET.md").is_file()
    assert sheet["per_source"]["safety"] == 40 and sheet["per_source"]["dialogues"] == 30
    assert json.loads((out / "metrics.json").read_text())["metrics"]["examples"] == len(rows)
    metrics = client.get("/metrics").text
    assert 'medgo_trainer_jobs_submitted_total{stage="build-sft"} 1.0' in metrics


@pytest.mark.parametrize(("recipe", "override", "message"), [
    ("no-such-mixture", None, "no mixture named 'no-such-mixture' for stage build-sft"),
    ("sft-mixture-default", "sources.drugs.weight=0", "weight must be a number > 0"),
    ("sft-mixture-default", "sources.pubmed.weight=1", "the mixture has no source 'pubmed'"),
    ("sft-mixture-default", "leakage.threshold=-1", "threshold"),
    ("medgo-tiny-sft", None, "known: sft-mixture-default"),  # a recipe is no mixture
])
def test_a_bad_mixture_is_refused_before_a_job_exists(client, settings, recipe, override,
                                                      message):
    body = {"stage": "build-sft", "recipe": recipe, "overrides": [override] if override else []}
    response = client.post("/v1/jobs", json=body, headers=AUTH)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_recipe" and error["param"] == "recipe"
    assert message in error["message"]
    with sqlite3.connect(settings.jobs_dir / JOBS_DB) as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    assert list(settings.jobs_dir.glob("*/job.log")) == []


def test_auth_is_closed_by_default_and_unknown_jobs_are_404(client):
    assert client.get("/v1/jobs/abc").status_code == 401
    wrong = client.get("/v1/jobs/abc", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["code"] == "invalid_token"
    missing = client.get("/v1/jobs/abc", headers=AUTH)
    assert missing.status_code == 404
    assert missing.json()["error"] == {"message": "no job 'abc'", "type": "not_found_error",
                                       "param": "job_id", "code": "job_not_found"}
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
    assert client.get("/metrics").status_code == 200
