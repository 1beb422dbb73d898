"""The job API's least privilege (api/policy.py, api/scopes.py): one test per attack.

Every refusal is a 422 (403 for a caller without the scope) in the project's error
shape naming the field, and leaves nothing behind: no job row, no job directory, no
process. The recipes validate against real TRL/PEFT classes; nothing is trained here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from medgo_trainer.api.app import JOBS_DB, create_app
from medgo_trainer.settings import TrainerSettings

OPS = {"Authorization": "Bearer ops-test-token"}
GATEWAY = {"Authorization": "Bearer gateway-test-token"}
# Invalid YAML (a second `: ` on the line): PyYAML's own message would quote this line.
SECRET_LINE = "api_key: sk-live-0123456789abcdef: oops"


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    """The API's data, model, job and recipes directories, and one outside them all."""
    made = {name: tmp_path / name for name in ("data", "models", "jobs", "recipes", "outside")}
    for path in made.values():
        path.mkdir()
    return made


@pytest.fixture
def client(dirs: dict[str, Path]) -> Iterator[TestClient]:
    settings = TrainerSettings(
        service_tokens={"ops": "ops-test-token", "gateway": "gateway-test-token"},
        data_dir=dirs["data"], model_dir=dirs["models"], jobs_dir=dirs["jobs"],
        recipes_dir=dirs["recipes"])
    with TestClient(create_app(settings)) as c:
        yield c


def _refused(client: TestClient, body: dict, *, param: str, code: str,
             status: int = 422, headers: dict | None = None) -> str:
    """POST the job, check the refusal's shape and that nothing was created; its message."""
    response = client.post("/v1/jobs", json=body, headers=headers or OPS)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["param"], error["code"]) == (param, code), error
    jobs_dir = client.app.state.settings.jobs_dir
    with sqlite3.connect(jobs_dir / JOBS_DB) as db:
        assert db.execute("SELECT COUNT(*) FROM jobs").fetchone() == (0,)
    assert sorted(p.name for p in jobs_dir.iterdir()) == [JOBS_DB]  # no job directory
    return error["message"]


def _sft(dirs: dict[str, Path], **fields: object) -> str:
    """A complete SFT recipe whose paths lie under the model directory, as YAML."""
    raw = {"stage": "sft", "base": str(dirs["models"] / "base"),
           "data": {"train": [str(dirs["models"] / "sft.jsonl")]},
           "trl": {"use_cpu": True, "bf16": False, "max_steps": 1}, **fields}
    return yaml.safe_dump(raw)


@pytest.mark.parametrize("recipe", ["/etc/passwd", "../recipes/x", "sub/dir", "a..b"])
def test_a_recipe_path_is_refused_only_names_are_looked_up(client, dirs, recipe):
    (dirs["outside"] / "x.yaml").write_text(_sft(dirs))
    message = _refused(client, {"stage": "sft", "recipe": recipe}, param="recipe",
                       code="recipe_not_allowed")
    assert "not a path" in message


def test_a_recipe_planted_through_a_symlink_is_refused(client, dirs):
    (dirs["outside"] / "planted.yaml").write_text(_sft(dirs))
    (dirs["recipes"] / "planted.yaml").symlink_to(dirs["outside"] / "planted.yaml")
    message = _refused(client, {"stage": "sft", "recipe": "planted"}, param="recipe",
                       code="recipe_not_allowed")
    assert "links outside its directory" in message


def test_a_recipe_naming_a_path_outside_the_directories_is_refused(client, dirs):
    (dirs["recipes"] / "escape.yaml").write_text(_sft(dirs, base=str(dirs["outside"])))
    message = _refused(client, {"stage": "sft", "recipe": "escape"}, param="recipe",
                       code="path_not_allowed")
    assert message.startswith(f"base: '{dirs['outside']}' is outside the data, model and job")


@pytest.mark.parametrize("override", [
    "base={outside}/model",                        # plainly outside
    "data.train=[{models}/../outside/x.jsonl]",    # `..` refused as written
    "adapter={models}/link",                       # a symlink in the model dir leading out
    "trl.resume_from_checkpoint={outside}/checkpoint-10",
])
def test_an_override_path_outside_the_directories_is_refused(client, dirs, override):
    (dirs["recipes"] / "ok.yaml").write_text(_sft(dirs))
    (dirs["models"] / "link").symlink_to(dirs["outside"])
    item = override.format(**dirs)
    _refused(client, {"stage": "sft", "recipe": "ok", "overrides": [item]},
             param="overrides", code="path_not_allowed")


@pytest.mark.parametrize("override", [
    "trl.model_init_kwargs={trust_remote_code: true}",
    "trl.model_init_kwargs.trust_remote_code=true",
    "trl.deepspeed=/tmp/ds.json",
    "lora.target_modules=all-linear",
    "sources.safety.options={kinds: [jailbreak]}",
])
def test_an_override_key_off_the_allowlist_is_refused(client, override):
    stage, recipe = (("build-sft", "sft-mixture-default") if override.startswith("sources")
                     else ("sft", "medgo-tiny-sft"))
    message = _refused(client, {"stage": stage, "recipe": recipe, "overrides": [override]},
                       param="overrides", code="recipe_not_allowed")
    assert f"override key '{override.partition('=')[0]}' is not allowed" in message


def test_trust_remote_code_nested_in_a_recipe_is_refused(client, dirs):
    trl = {"use_cpu": True, "bf16": False,
           "model_init_kwargs": {"dtype": "float32", "trust_remote_code": True}}
    (dirs["recipes"] / "remote.yaml").write_text(_sft(dirs, trl=trl))
    message = _refused(client, {"stage": "sft", "recipe": "remote"}, param="recipe",
                       code="recipe_not_allowed")
    assert message.startswith("trl.model_init_kwargs.trust_remote_code: trust_remote_code is")


def test_a_yaml_error_names_the_position_never_the_content(client, dirs):
    (dirs["recipes"] / "broken.yaml").write_text(f"stage: sft\n{SECRET_LINE}\n")
    message = _refused(client, {"stage": "sft", "recipe": "broken"}, param="recipe",
                       code="invalid_recipe")
    assert message.endswith("is not valid YAML (line 2, column 34)")
    assert "sk-live" not in message and "api_key" not in message


def test_the_gateway_token_has_no_job_api_rights(client, dirs):
    """A valid token of another service is 403 on every route unless ops grants it."""
    (dirs["recipes"] / "ok.yaml").write_text(_sft(dirs))
    message = _refused(client, {"stage": "sft", "recipe": "ok"}, param="jobs:write",
                       code="insufficient_scope", status=403, headers=GATEWAY)
    assert message == "service 'gateway' lacks the scope 'jobs:write' this endpoint requires"
    for path in ("/v1/jobs/abc", "/v1/jobs/abc/logs"):
        assert client.get(path, headers=GATEWAY).status_code == 403
    assert client.post("/v1/jobs/abc/cancel", headers=GATEWAY).status_code == 403
    assert client.get("/v1/jobs/abc", headers=OPS).status_code == 404  # ops: everything


def test_a_recipe_from_the_recipes_directory_passes_the_policy(client, dirs):
    """The allowed path: the same recipe, its paths inside the directories, gets as far
    as the recipe's own validation (no data file in `models/` here)."""
    (dirs["recipes"] / "ok.yaml").write_text(_sft(dirs))
    message = _refused(client, {"stage": "sft", "recipe": "ok",
                                "overrides": ["trl.learning_rate=1e-5", "seed=7",
                                              "trl.resume_from_checkpoint=last"]},
                       param="recipe", code="invalid_recipe")
    assert message.startswith(f"data: cannot read {dirs['models'] / 'sft.jsonl'}")
