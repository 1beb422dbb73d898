"""Fixtures for the evaluation tests: the bundled data and small synthetic reports."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from medgo_trainer.evaluation.report import EvalReport, ExampleResult, RunInfo, TaskResult
from medgo_trainer.settings import TrainerSettings


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = TrainerSettings().data_dir
    if not (path / "cblue").is_dir():
        pytest.fail(f"bundled data not found at {path}; set MEDGO_TRAINER_DATA_DIR")
    return path


def _make_report(tasks: dict[str, tuple[str, list]]) -> EvalReport:
    """A report whose task ``name`` has metric ``kind`` and these per-example units."""
    now = datetime.now(UTC)
    results = {
        name: TaskResult.from_examples(
            task=name,
            title=name,
            metric=kind,
            kind=kind,
            examples=[ExampleResult(id=str(i), unit=u) for i, u in enumerate(units)],
        )
        for name, (kind, units) in tasks.items()
    }
    run = RunInfo(
        endpoint="http://x", model="m", shots=0, limit=None, scoring="generate", seed=0,
        started_at=now, finished_at=now, requests=0, cache_hits=0,
    )  # fmt: skip
    return EvalReport(run=run, tasks=results)


@pytest.fixture
def make_report() -> Callable[[dict[str, tuple[str, list]]], EvalReport]:
    """Build a report from ``{task: (metric kind, per-example units)}``."""
    return _make_report
