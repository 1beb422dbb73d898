"""`medgo-train purge` (training/loop/retention.py): the loop's export copies past the
feedback store's period are removed and recent ones kept, nothing outside
`<model_dir>/checkpoints` is touched (planted links are refused, even one swapped in
during the purge), a dry run deletes nothing, a second run finds nothing; end to end
against a real feedback service process; and the job API's export-copy age gauge."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from medgo_testing.services import served_feedback
from medgo_trainer.api.app import create_app
from medgo_trainer.cli import main
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop import retention

NOW = datetime.now(UTC)
DAY_S = 86400
TOKENS = {"gateway": "gw-retention-token", "trainer": "tr-retention-token",
          "ops": "ops-retention-token"}  # the default scopes: ops may read interactions


def _write(path: Path, age_days: float, text: str = '{"prompt": "p"}\n') -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = (NOW - timedelta(days=age_days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


@pytest.fixture
def volume(tmp_path: Path) -> dict[str, Path]:
    """A model volume with export copies of several ages, a run's other files, and
    links planted to files outside it (which are older than any cutoff)."""
    models, outside = tmp_path / "models", tmp_path / "outside"
    root = models / "checkpoints"
    paths = {
        "old": _write(root / "medgo-tiny-dpo-aaaa" / "dpo.jsonl", 40),
        "recent": _write(root / "medgo-tiny-dpo-bbbb" / "dpo.jsonl", 2),
        "adapter": _write(root / "medgo-tiny-dpo-aaaa" / "run" / "serving" / "x.json", 40),
        "report": _write(root / "medgo-tiny-dpo-aaaa" / "eval" / "dpo.jsonl", 40),
        "target": _write(outside / "secret.jsonl", 400),
        "outside_copy": _write(outside / "ckpt" / "dpo.jsonl", 400),
    }
    (root / "medgo-tiny-dpo-cccc").mkdir()
    (root / "medgo-tiny-dpo-cccc" / "dpo.jsonl").symlink_to(paths["target"])
    (root / "medgo-tiny-dpo-dddd").symlink_to(outside / "ckpt", target_is_directory=True)
    return {**paths, "models": models, "root": root}


def test_removes_copies_past_the_cutoff_and_nothing_else(volume) -> None:
    cutoff = NOW - timedelta(days=7)
    dry = retention.purge_export_copies(volume["root"], cutoff, dry_run=True)
    assert dry["would_remove"] == [str(volume["old"])]
    assert volume["old"].exists()  # a dry run deletes nothing

    done = retention.purge_export_copies(volume["root"], cutoff, dry_run=False)
    assert done["removed"] == [str(volume["old"])]
    assert (done["kept"], done["bytes"]) == (1, len('{"prompt": "p"}\n'))
    assert not volume["old"].exists()
    for kept in ("recent", "adapter", "report", "target", "outside_copy"):
        assert volume[kept].exists(), kept
    assert (volume["root"] / "medgo-tiny-dpo-cccc" / "dpo.jsonl").is_symlink()
    root = volume["root"].resolve()
    assert done["refused"] == [
        f"{root}/medgo-tiny-dpo-cccc/dpo.jsonl: a symbolic link, not removed",
        f"{root}/medgo-tiny-dpo-dddd: a symbolic link, not followed",
    ]
    again = retention.purge_export_copies(volume["root"], cutoff, dry_run=False)
    assert again["removed"] == []  # idempotent


def test_a_directory_swapped_for_a_link_during_the_purge_is_not_followed(volume) -> None:
    scan = retention.scan_export_copies(volume["root"])
    old = next(c for c in scan.copies if c.path.name == "dpo.jsonl"
               and c.path.parent.name == "medgo-tiny-dpo-aaaa")
    directory = old.path.parent
    directory.rename(directory.with_name("moved"))
    directory.symlink_to(volume["outside_copy"].parent, target_is_directory=True)
    assert retention._remove(old, scan) is False
    assert volume["outside_copy"].exists()
    assert scan.refused[-1].endswith("not removed")


def test_no_checkpoints_directory_is_nothing_to_do(tmp_path: Path) -> None:
    result = retention.purge_export_copies(tmp_path / "none", NOW, dry_run=False)
    assert (result["removed"], result["kept"], result["refused"]) == ([], 0, [])


def test_a_checkpoints_directory_that_is_a_link_is_not_followed(volume, tmp_path) -> None:
    models = tmp_path / "other-models"
    models.mkdir()
    (models / "checkpoints").symlink_to(volume["root"], target_is_directory=True)
    result = retention.purge_export_copies(models / "checkpoints", NOW, dry_run=False)
    assert result["removed"] == [] and volume["old"].exists()
    assert result["refused"] == [f"{models / 'checkpoints'}: a symbolic link, not followed"]


@pytest.fixture(scope="module")
def feedback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real feedback service (a child process, SQLite): 30-day retention, copies 7."""
    tmp = tmp_path_factory.mktemp("feedback")
    env = {"MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{tmp / 'feedback.db'}",
           "MEDGO_FEEDBACK_SERVICE_TOKENS": ",".join(f"{k}={v}" for k, v in TOKENS.items()),
           "MEDGO_FEEDBACK_LOCAL_MODE": "true", "MEDGO_FEEDBACK_RETENTION_DAYS": "30",
           "MEDGO_FEEDBACK_EXPORT_COPY_RETENTION_DAYS": "7",
           "MEDGO_FEEDBACK_PURGE_BATCH_ROWS": "2"}
    with served_feedback(env, tmp / "feedback.log") as (base, _):
        yield base


def _record(age_days: float) -> dict:
    return {"id": str(uuid.uuid4()), "created_at": (NOW - timedelta(days=age_days)).isoformat(),
            "user_id": "u-1", "checkpoint_id": "medgo-tiny-sft",
            "messages": [{"role": "user", "content": "高血压患者可以服用布洛芬吗？"}],
            "response": "应在医生指导下短期使用。", "latency_ms": 1.0, "prompt_tokens": 1,
            "completion_tokens": 1}


def _exists(base: str, interaction_id: str) -> bool:
    response = httpx.get(f"{base}/v1/interactions/{interaction_id}",
                         headers={"Authorization": f"Bearer {TOKENS['ops']}"})
    assert response.status_code in (200, 404), response.text
    return response.status_code == 200


def test_purge_command_end_to_end(feedback, volume, monkeypatch, capsys) -> None:
    records = [_record(age) for age in (90, 60, 45, 10)]
    gateway = {"Authorization": f"Bearer {TOKENS['gateway']}"}
    assert httpx.post(f"{feedback}/v1/interactions", json={"records": records},
                      headers=gateway).status_code == 201
    for name in ("MODEL_DIR", "FEEDBACK_URL", "FEEDBACK_TOKEN"):
        monkeypatch.setenv(f"MEDGO_TRAINER_{name}", {
            "MODEL_DIR": str(volume["models"]), "FEEDBACK_URL": feedback,
            "FEEDBACK_TOKEN": TOKENS["trainer"]}[name])

    assert main(["purge", "--dry-run"]) == 2  # the planted links are reported
    assert all(_exists(feedback, r["id"]) for r in records)
    assert volume["old"].exists()

    for link in ("medgo-tiny-dpo-cccc/dpo.jsonl", "medgo-tiny-dpo-dddd"):
        (volume["root"] / link).unlink()  # ops removed what was planted
    capsys.readouterr()
    assert main(["purge", "--dry-run"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["feedback"]["due"] == {"interactions": 3, "ratings": 0}
    assert dry["export_copies"]["would_remove"] == [str(volume["old"])]
    assert all(_exists(feedback, r["id"]) for r in records) and volume["old"].exists()

    assert main(["purge"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["feedback"]["purged"] == {"interactions": 3, "ratings": 0}
    assert done["feedback"]["due"] == {"interactions": 0, "ratings": 0}
    assert done["export_copies"]["removed"] == [str(volume["old"])]
    assert [_exists(feedback, r["id"]) for r in records] == [False, False, False, True]
    assert not volume["old"].exists() and volume["recent"].exists()
    assert volume["target"].exists() and volume["outside_copy"].exists()

    assert main(["purge"]) == 0  # idempotent
    again = json.loads(capsys.readouterr().out)
    assert again["feedback"]["purged"]["interactions"] == 0
    assert again["export_copies"]["removed"] == []


def test_purge_command_without_feedback_deletes_nothing(volume, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MEDGO_TRAINER_MODEL_DIR", str(volume["models"]))
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_URL", "http://127.0.0.1:9")
    assert main(["purge"]) == 2
    assert "cannot reach the feedback service" in capsys.readouterr().err
    assert volume["old"].exists()


def test_job_api_exposes_the_oldest_export_copy_age(volume, tmp_path: Path) -> None:
    settings = TrainerSettings(model_dir=volume["models"], jobs_dir=tmp_path / "jobs")
    with TestClient(create_app(settings)) as client:
        text = client.get("/metrics").text
    sample = next(line for line in text.splitlines()
                  if line.startswith("medgo_trainer_oldest_export_copy_age_seconds "))
    # the oldest copy is 40 days older than NOW (module import, maybe minutes ago in a
    # long session); links are not counted
    expected = time.time() - (NOW - timedelta(days=40)).timestamp()
    assert abs(float(sample.split()[1]) - expected) < 60
