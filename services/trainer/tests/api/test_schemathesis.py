"""Property-based run over the job API's OpenAPI schema: no input yields a 5xx.

In process with the ops token (every route past auth), on an empty jobs directory.
A generated job names no packaged recipe (random text), so it is refused before any
process starts; the run never trains.
"""

from __future__ import annotations

from pathlib import Path

from medgo_testing.schema_fuzz import assert_schema_holds
from medgo_trainer.api.app import create_app
from medgo_trainer.settings import TrainerSettings

TOKEN = "schemathesis-ops-token"


def test_no_server_errors(tmp_path: Path):
    settings = TrainerSettings(service_tokens={"ops": TOKEN}, jobs_dir=tmp_path / "jobs",
                               model_dir=tmp_path / "models", data_dir=tmp_path / "data")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    exercised = assert_schema_holds(create_app(settings), lambda method, path: auth)
    assert ("POST", "/v1/jobs") in exercised and ("GET", "/v1/jobs/{job_id}") in exercised
    assert list((tmp_path / "jobs").glob("*/job.log")) == []  # nothing was started
