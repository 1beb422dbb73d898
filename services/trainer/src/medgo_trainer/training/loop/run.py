"""The six steps in order (`run_loop`), and the checks that come before any compute."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Protocol

import httpx
from medgo_common.schemas.serving import ServingManifest
from medgo_trainer.evaluation.gate import GateDecision
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop.evaluation import evaluate_pair
from medgo_trainer.training.loop.options import LoopError, LoopOptions, serve_env
from medgo_trainer.training.loop.retention import EXPORT_COPY, checkpoints_dir
from medgo_trainer.training.promotion import EVAL_REPORT, register_run, report_gate
from medgo_trainer.training.recipe import Recipe
from medgo_trainer.training.registry import Checkpoint, GateFailedError, Registry

log = logging.getLogger(__name__)

STEPS = 6
EXPORT_TIMEOUT_S = 900.0  # a year of ratings streams in well under this


def _step(n: int, text: str, *args: object) -> None:
    log.info(f"loop [{n}/{STEPS}] {text}", *args)


class Compute(Protocol):
    """Where steps 3 (train) and 5 (evaluate) run: `LocalCompute`, or `K8sCompute`."""

    def check(self) -> None:
        """Refuse, before anything is written, what would fail later (settings, names)."""

    def reference(self, baseline: Checkpoint) -> Path | None:
        """The baseline merged into its base as a plain model (the DPO reference policy),
        made outside the training job; None lets the stage merge it in its own process."""

    def train(self, recipe: Recipe, checkpoint_id: str, run_dir: Path) -> dict[str, float]:
        """Run the DPO stage into `run_dir`; returns its metrics."""

    def evaluate(self, baseline: Checkpoint, candidate: Checkpoint,
                 reports: dict[str, Path]) -> None:
        """Write each checkpoint's evaluation report (`reports`: checkpoint id → path)."""


class LocalCompute:
    """Train in this process; evaluate on a temporary vLLM started as a child process."""

    def __init__(self, settings: TrainerSettings, opts: LoopOptions) -> None:
        self.settings, self.opts = settings, opts

    def check(self) -> None:
        # The inference service validates its own settings: a dry run of its launcher
        # (no vLLM start) rejects bad --serve-set values and an unservable manifest.
        dry_run = subprocess.run(
            [str(Path(sys.executable).with_name("medgo-inference")), "--dry-run"],
            env={**os.environ, "MEDGO_INFERENCE_MANIFEST": str(self.settings.serving_manifest),
                 **serve_env(self.opts)},
            capture_output=True, text=True, check=False,
        )
        if dry_run.returncode != 0:
            lines = (dry_run.stderr or dry_run.stdout).strip().splitlines()
            raise LoopError(f"--serve-set: {lines[-1] if lines else 'medgo-inference failed'}")

    def reference(self, baseline: Checkpoint) -> Path | None:
        # One process without DeepSpeed: the stage merges the SFT adapter itself (a recipe
        # under ZeRO-3 is refused at load with the `medgo-train export` command to run).
        return None

    def train(self, recipe: Recipe, checkpoint_id: str, run_dir: Path) -> dict[str, float]:
        from medgo_trainer.training.stages.preference import run as run_dpo

        return run_dpo(recipe, run_dir, progress=self.opts.progress).metrics

    def evaluate(self, baseline: Checkpoint, candidate: Checkpoint,
                 reports: dict[str, Path]) -> None:
        evaluate_pair(self.settings, self.opts, baseline, candidate, reports)


def run_loop(settings: TrainerSettings, opts: LoopOptions,
             compute: Compute | None = None) -> dict[str, Any]:
    """Run the six steps; raises `LoopError`/`RegistryError`/`RecipeError` on refusal."""
    import shutil
    import tempfile

    from medgo_trainer.training.stages.datafiles import data_snapshot_hash

    compute = compute or LocalCompute(settings, opts)
    compute.check()
    check_evaluation(settings, opts)  # a typo in --tasks must not cost a training run
    registry = Registry.from_settings(settings)
    with tempfile.TemporaryDirectory(prefix="medgo-export-") as staging:
        export = Path(staging) / EXPORT_COPY
        pairs = fetch_dpo_export(settings, opts, export)
        if pairs < opts.min_pairs:
            why = (f"only {pairs} DPO pairs in the export, fewer than --min-pairs "
                   f"{opts.min_pairs}")
            if opts.skip_few_pairs:
                log.info("loop: %s; nothing to train this time", why)
                return {"skipped": why, "pairs": pairs}
            raise LoopError(f"{why}: rate more answers (or lower --min-pairs)")
        _step(1, "exported %d DPO pairs from %s", pairs, settings.feedback_url)
        baseline = current_baseline(registry, settings.serving_manifest)
        _step(2, "baseline %s (%s)", baseline.id, baseline.path)
        reference = compute.reference(baseline)
        data_hash = data_snapshot_hash(dpo_recipe(opts, baseline, export, reference))
        checkpoint_id = opts.checkpoint_id or f"{opts.id_prefix}-dpo-{data_hash[:8]}"
        if any(c.id == checkpoint_id for c in registry.checkpoints()):
            raise LoopError(f"checkpoint {checkpoint_id!r} is already registered: no new "
                            "ratings since it was trained (or pass another --id)")
        work = checkpoints_dir(settings) / checkpoint_id
        work.mkdir(parents=True, exist_ok=True)  # a run that died unregistered is redone
        # Removed after the feedback store's export-copy period (`medgo-train purge`).
        export = Path(shutil.move(export, work / EXPORT_COPY))
    recipe = dpo_recipe(opts, baseline, export, reference)
    _step(3, "training %s with recipe %s into %s", checkpoint_id, opts.recipe, work / "run")
    metrics = compute.train(recipe, checkpoint_id, work / "run")

    candidate = register_run(registry, checkpoint_id, work / "run", baseline.id, baseline.base)
    _step(4, "registered candidate %s (parent %s, data %s)", candidate.id, baseline.id,
          candidate.data_sha256[:12])

    candidate_report = Path(candidate.path) / EVAL_REPORT
    baseline_report = work / "eval" / "baseline.json"
    compute.evaluate(baseline, candidate,
                     {baseline.id: baseline_report, candidate.id: candidate_report})
    _step(5, "evaluated: %s and %s", candidate_report, baseline_report)

    decisions: list[GateDecision] = []
    gate = report_gate(candidate_report, baseline_report, opts.policy)

    def recorded_gate(cand: Checkpoint, base: Checkpoint | None) -> GateDecision:
        decisions.append(gate(cand, base))
        return decisions[-1]

    gate_table = work / "eval" / "gate.md"
    try:
        promoted = registry.promote(candidate.id, gate=recorded_gate,
                                    manifest_path=settings.serving_manifest)
    except GateFailedError:
        if decisions:
            gate_table.write_text(decisions[-1].to_markdown() + "\n", encoding="utf-8")
        log.info("loop: %s stays a candidate; after review: medgo-train promote %s "
                 "--report %s --baseline-report %s --policy POLICY", candidate.id,
                 candidate.id, candidate_report, baseline_report)
        raise
    gate_table.write_text(decisions[-1].to_markdown() + "\n", encoding="utf-8")
    _step(6, "promoted %s; %s now serves it (restart inference to load it); gate table %s",
          promoted.id, settings.serving_manifest, gate_table)
    return {"promoted": promoted.id, "parent": baseline.id, "pairs": pairs,
            "data_sha256": promoted.data_sha256, "metrics": metrics,
            "gate": decisions[-1].reasons, "gate_table": str(gate_table),
            "reports": {"candidate": str(candidate_report), "baseline": str(baseline_report)},
            "manifest": str(settings.serving_manifest)}


def dpo_recipe(opts: LoopOptions, baseline: Checkpoint, export: Path,
               reference: Path | None = None) -> Recipe:
    """The DPO recipe on top of the baseline: its base, its adapter as the SFT policy
    (and, when one was exported, the merged baseline as the starting policy)."""
    from medgo_trainer.training.recipe import load_recipe, resolve_recipe_path

    merged = [f"reference={reference}"] if reference is not None else []
    return load_recipe(resolve_recipe_path(opts.recipe), [
        *opts.overrides, f"base={baseline.base}", f"adapter={baseline.path}",
        f"data.train=[{export}]", *merged])


def check_evaluation(settings: TrainerSettings, opts: LoopOptions) -> None:
    """Task names, their data and the gate policy, checked before compute."""
    from medgo_trainer.evaluation.gate import GatePolicy
    from medgo_trainer.evaluation.runner import plan_tasks

    try:
        plan_tasks(list(opts.tasks), settings.data_dir, limit=opts.limit, shots=0,
                   seed=opts.seed)
        if opts.policy is not None:
            GatePolicy.load(opts.policy)
    except (OSError, ValueError) as exc:
        raise LoopError(f"evaluation settings: {exc}") from exc


def current_baseline(registry: Registry, manifest_path: Path) -> Checkpoint:
    """
    The promoted checkpoint; with none, the one `serving.json` already serves.

    A fresh install serves medgo-tiny's SFT adapter from the manifest `build-tiny`
    writes, with an empty registry. Registering that adapter and marking it promoted
    records a fact (it is what clinicians rated), so it passes the gate as is; the
    manifest is rewritten with the same content.
    """
    promoted = registry.promoted()
    if promoted is not None:
        return promoted
    try:
        manifest = ServingManifest.load(manifest_path)
    except (OSError, ValueError) as exc:
        raise LoopError(f"nothing is promoted and {manifest_path} is unreadable ({exc}); "
                        "run `medgo-train build-tiny` or promote a checkpoint first") from exc
    if not manifest.adapters:
        raise LoopError(f"{manifest_path} serves no adapter, so there is no policy to align")
    served = manifest.adapters[0]
    if served.name not in {c.id for c in registry.checkpoints()}:
        register_run(registry, served.name, Path(served.path), None, manifest.base_model)

    def already_served(candidate: Checkpoint, baseline: Checkpoint | None) -> GateDecision:
        return GateDecision(True, [f"adopted: {manifest_path} already serves it"])

    return registry.promote(served.name, gate=already_served, manifest_path=manifest_path)


def fetch_dpo_export(settings: TrainerSettings, opts: LoopOptions, target: Path) -> int:
    """Stream `GET /v1/exports/dpo` into `target` (constant memory); returns its rows."""
    params = {k: v for k, v in (("since", opts.since), ("until", opts.until),
                                ("min_raters", opts.min_raters)) if v is not None}
    headers = {"Authorization": f"Bearer {settings.feedback_token}"}
    url = f"{settings.feedback_url.rstrip('/')}/v1/exports/dpo"
    target.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    try:
        with httpx.stream("GET", url, params=params, headers=headers,
                          timeout=EXPORT_TIMEOUT_S) as response:
            if response.status_code != 200:
                response.read()
                raise LoopError(f"feedback export refused ({response.status_code}): "
                                f"{_error_message(response)}")
            with target.open("w", encoding="utf-8") as out:
                for line in response.iter_lines():
                    if line.strip():
                        out.write(line + "\n")
                        rows += 1
    except httpx.HTTPError as exc:
        raise LoopError(f"cannot export from the feedback service at {url} ({exc}); check "
                        "MEDGO_TRAINER_FEEDBACK_URL") from exc
    return rows


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]

