"""Promotion glue between the registry and the rest of training: registering a finished
stage run as a candidate, and the evaluation gate as the registry's `Gate`.

The registry (`registry.py`) stores checkpoints and switches what is served in one
transaction; it knows nothing about where a run's files are or how reports are judged.
This module knows both: a run directory's layout (`recipe.resolved.yaml`,
`metrics.json`, `serving/`) and the evaluation wing's gate (`evaluation.gate`).
"""

from __future__ import annotations

import json
from pathlib import Path

from medgo_trainer.evaluation.gate import GateDecision, GatePolicy, evaluate_gate
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.outputs import METRICS_FILE, RESOLVED_RECIPE
from medgo_trainer.training.registry import Checkpoint, Gate, Registry, RegistryError

EVAL_REPORT = "eval-report.json"


def report_gate(candidate_report: Path | None = None, baseline_report: Path | None = None,
                policy: Path | None = None) -> Gate:
    """The evaluation gate (`medgo_trainer.evaluation.gate.evaluate_gate`) as a registry `Gate`.

    Each checkpoint's report defaults to `<checkpoint path>/eval-report.json` (what
    `medgo-eval --out` writes beside the adapter). With nothing promoted yet there is no
    baseline to regress from, so the gate only requires the candidate's report to exist.
    """

    def gate(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        cand_path = candidate_report or Path(candidate.path) / EVAL_REPORT
        if not cand_path.is_file():
            return GateDecision(False, [f"no evaluation report for {candidate.id} at {cand_path}"
                                        " (run medgo-eval first)"])
        if baseline is None and baseline_report is None:
            return GateDecision(True, ["first promotion: no baseline to compare with"])
        base_path = baseline_report or Path(baseline.path) / EVAL_REPORT
        if not base_path.is_file():
            return GateDecision(False, [f"no baseline evaluation report at {base_path}"])
        return evaluate_gate(EvalReport.load(cand_path), EvalReport.load(base_path),
                             GatePolicy.load(policy) if policy else None)

    return gate


def register_run(registry: Registry, checkpoint_id: str, run: Path, parent: str | None,
                 base: str | None = None) -> Checkpoint:
    """Register a finished stage run (its `--out` directory) as a candidate.

    `base` overrides the recipe's base when the run is served on a base that has since
    moved (medgo-tiny is built in a staging directory, then swapped into place).
    """
    import yaml

    try:
        recipe = yaml.safe_load((run / RESOLVED_RECIPE).read_text(encoding="utf-8"))
        record = json.loads((run / METRICS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise RegistryError(f"{run} is not a finished stage run ({exc})") from exc
    # DPO/KTO runs hold the adapter to serve on the raw base in `serving/`; a local base
    # is recorded absolute, since the inference launcher runs from another directory.
    served = run / "serving" if (run / "serving").is_dir() else run
    base_path = Path(base or recipe["base"])
    base_ref = str(base_path.resolve()) if base_path.exists() else str(base_path)
    return registry.register(
        checkpoint_id=checkpoint_id, parent=parent, base=base_ref,
        stage=recipe["stage"], path=served.resolve(), data_sha256=record["data_hash"],
        recipe=recipe, metrics=record["metrics"])
