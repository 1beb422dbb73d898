"""`medgo-train loop` refuses bad evaluation input before it sends a single request.

A gate policy naming a task the catalogue does not know, or a dataset file whose
records lack a field an evaluated task needs, would otherwise surface after the
export and the DPO run (an hour on the 72B recipe). The loop checks both first:
exit 2, one clear message, nothing written. The feedback service is a port nobody
listens on, so an export attempted first would fail with a different message.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_common.supervise import free_port
from medgo_trainer.cli import main as train


@pytest.fixture
def nowhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_TOKEN", "refusal-trainer-token")


def _refused(model_dir: Path, capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    served = (model_dir / "serving.json").read_bytes()
    assert train(["loop", "--tasks", "care-advice", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err
    assert "feedback" not in err  # refused before the export was attempted
    assert (model_dir / "serving.json").read_bytes() == served
    assert not (model_dir / "checkpoints").exists()
    assert not (model_dir / "registry.sqlite3").exists()
    return err


def test_policy_naming_an_unknown_task(
    model_dir: Path, nowhere: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("min_n: 20\nrequired_tasks: [care-advise]\n", encoding="utf-8")
    err = _refused(model_dir, capsys, "--policy", str(policy))
    assert "unknown task(s) care-advise" in err and "care-advice" in err  # the known ones


def test_dataset_missing_a_field_the_task_needs(
    model_dir: Path, nowhere: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    questions = tmp_path / "data" / "corpus" / "huatuo_bentsao" / "benchmark_question.json"
    questions.parent.mkdir(parents=True)
    questions.write_text('[{"query": "头痛怎么办？"}]', encoding="utf-8")
    monkeypatch.setenv("MEDGO_TRAINER_DATA_DIR", str(tmp_path / "data"))
    err = _refused(model_dir, capsys)
    assert f"{questions}: record 0 lacks field(s) question" in err
