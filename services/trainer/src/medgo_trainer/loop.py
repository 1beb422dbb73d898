"""`medgo-train loop`: clinicians' ratings → DPO → evaluation → gated promotion.

One run closes the feedback loop on whatever the registry has promoted:

1. export: the feedback service's DPO export over HTTP, refused below `--min-pairs`
   (before anything is written);
2. baseline: the promoted checkpoint (on a fresh install, the one `serving.json`
   serves, adopted into the registry so the new checkpoint has a parent);
3. train: the `dpo` stage on that export, on top of the baseline (its adapter is the
   SFT policy the DPO reference is computed with);
4. register: a candidate with lineage (parent, data snapshot hash, resolved recipe);
5. evaluate: the candidate has to be *served* to be evaluated, and the simplest honest
   way is the production path itself — a temporary vLLM started through our launcher
   (`medgo-inference`) serving the base with both the baseline and the candidate
   adapter, so the two are measured by the same engine on the same items; it is
   stopped when both reports are written;
6. promote: the registry's gate (`eval.gate` policy on the two reports); on a pass
   `serving.json` names the candidate and the baseline is retired. Inference picks it
   up when it is restarted.

Everything a run writes lives in `<model_dir>/checkpoints/<id>/`: the export
(`dpo.jsonl`), the stage run (`run/`, adapter to serve in `run/serving/` with its
`eval-report.json`), the baseline's report (`eval/baseline.json`) and the temporary
server's log (`eval/vllm.log`). A failed gate leaves the candidate registered, the
manifest untouched, and says how to promote it after review.

Each round serves "previous adapter, then the new DPO delta" as one concatenated LoRA
(`stages.preference.compose_serving_adapter`), so the served rank grows by the DPO
rank per round: medgo-tiny serves rank 16 after one round, 24 after two, which needs
`MEDGO_INFERENCE_MAX_LORA_RANK=32` (the temporary evaluation server picks it itself).
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from medgo_common.schemas.serving import ServingManifest

from medgo_trainer.recipe import Recipe
from medgo_trainer.registry import (
    EVAL_REPORT,
    Checkpoint,
    GateDecision,
    GateFailedError,
    Registry,
    register_run,
    report_gate,
)
from medgo_trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

STEPS = 6
EXPORT_TIMEOUT_S = 900.0  # a year of ratings streams in well under this


class LoopError(ValueError):
    """A reason the loop stops before spending compute (or cannot evaluate)."""


@dataclass(frozen=True)
class LoopOptions:
    """One run's choices; the CLI flags map onto these one to one."""

    recipe: str = "medgo-tiny-dpo"
    overrides: tuple[str, ...] = ()
    min_pairs: int = 16
    since: str | None = None
    until: str | None = None
    min_raters: int | None = None
    checkpoint_id: str | None = None
    id_prefix: str = "medgo-tiny"
    tasks: tuple[str, ...] = ("safety", "mcq-cmexam", "kuake-qic")
    limit: int = 20
    max_tokens: int | None = 64
    seed: int = 0
    policy: Path | None = None
    serve_settings: dict[str, str] = field(default_factory=dict)
    serve_timeout_s: float = 600.0
    progress: bool = True


def _step(n: int, text: str, *args: object) -> None:
    log.info(f"loop [{n}/{STEPS}] {text}", *args)


def run_loop(settings: TrainerSettings, opts: LoopOptions) -> dict[str, Any]:
    """Run the six steps; raises `LoopError`/`RegistryError`/`RecipeError` on refusal."""
    import shutil
    import tempfile

    from medgo_trainer.stages import data_snapshot_hash
    from medgo_trainer.stages.dpo import run as run_dpo

    check_evaluation(settings, opts)  # a typo in --tasks must not cost a training run
    registry = Registry(settings.model_dir)
    with tempfile.TemporaryDirectory(prefix="medgo-export-") as staging:
        export = Path(staging) / "dpo.jsonl"
        pairs = fetch_dpo_export(settings, opts, export)
        if pairs < opts.min_pairs:
            raise LoopError(f"only {pairs} DPO pairs in the export, fewer than --min-pairs "
                            f"{opts.min_pairs}: rate more answers (or lower --min-pairs)")
        _step(1, "exported %d DPO pairs from %s", pairs, settings.feedback_url)
        baseline = current_baseline(registry, settings.serving_manifest)
        _step(2, "baseline %s (%s)", baseline.id, baseline.path)
        data_hash = data_snapshot_hash(dpo_recipe(opts, baseline, export))
        checkpoint_id = opts.checkpoint_id or f"{opts.id_prefix}-dpo-{data_hash[:8]}"
        if any(c.id == checkpoint_id for c in registry.checkpoints()):
            raise LoopError(f"checkpoint {checkpoint_id!r} is already registered: no new "
                            "ratings since it was trained (or pass another --id)")
        work = settings.model_dir / "checkpoints" / checkpoint_id
        work.mkdir(parents=True, exist_ok=True)  # a run that died unregistered is redone
        export = Path(shutil.move(export, work / "dpo.jsonl"))
    recipe = dpo_recipe(opts, baseline, export)
    _step(3, "training %s with recipe %s into %s", checkpoint_id, opts.recipe, work / "run")
    result = run_dpo(recipe, work / "run", progress=opts.progress)

    candidate = register_run(registry, checkpoint_id, work / "run", baseline.id, baseline.base)
    _step(4, "registered candidate %s (parent %s, data %s)", candidate.id, baseline.id,
          candidate.data_sha256[:12])

    candidate_report = Path(candidate.path) / EVAL_REPORT
    baseline_report = work / "eval" / "baseline.json"
    evaluate_pair(settings, opts, baseline, candidate, baseline_report, candidate_report)
    _step(5, "evaluated: %s and %s", candidate_report, baseline_report)

    decisions: list[GateDecision] = []
    gate = report_gate(candidate_report, baseline_report, opts.policy)

    def recorded_gate(cand: Checkpoint, base: Checkpoint | None) -> GateDecision:
        decisions.append(gate(cand, base))
        return decisions[-1]

    try:
        promoted = registry.promote(candidate.id, gate=recorded_gate,
                                    manifest_path=settings.serving_manifest)
    except GateFailedError:
        log.info("loop: %s stays a candidate; after review: medgo-train promote %s "
                 "--report %s --baseline-report %s --policy POLICY", candidate.id,
                 candidate.id, candidate_report, baseline_report)
        raise
    _step(6, "promoted %s; %s now serves it (restart inference to load it)",
          promoted.id, settings.serving_manifest)
    return {"promoted": promoted.id, "parent": baseline.id, "pairs": pairs,
            "data_sha256": promoted.data_sha256, "metrics": result.metrics,
            "gate": decisions[-1].reasons, "reports": {"candidate": str(candidate_report),
                                                       "baseline": str(baseline_report)},
            "manifest": str(settings.serving_manifest)}


def dpo_recipe(opts: LoopOptions, baseline: Checkpoint, export: Path) -> Recipe:
    """The DPO recipe on top of the baseline: its base, its adapter as the SFT policy."""
    from medgo_trainer.recipe import load_recipe, resolve_recipe_path

    return load_recipe(resolve_recipe_path(opts.recipe), [
        *opts.overrides, f"base={baseline.base}", f"adapter={baseline.path}",
        f"data.train=[{export}]"])


def serve_env(opts: LoopOptions) -> dict[str, str]:
    """`--serve-set name=value` as the inference service's environment variables."""
    return {f"MEDGO_INFERENCE_{k.upper()}": v for k, v in opts.serve_settings.items()}


def check_evaluation(settings: TrainerSettings, opts: LoopOptions) -> None:
    """Task names, their data, the gate policy and serve settings, checked before compute."""
    from medgo_trainer.eval.gate import GatePolicy
    from medgo_trainer.eval.runner import plan_tasks

    # The inference service validates its own settings: a dry run of its launcher
    # (no vLLM start) rejects bad --serve-set values and an unservable manifest.
    dry_run = subprocess.run(
        [str(Path(sys.executable).with_name("medgo-inference")), "--dry-run"],
        env={**os.environ, "MEDGO_INFERENCE_MANIFEST": str(settings.serving_manifest),
             **serve_env(opts)},
        capture_output=True, text=True, check=False,
    )
    if dry_run.returncode != 0:
        lines = (dry_run.stderr or dry_run.stdout).strip().splitlines()
        raise LoopError(f"--serve-set: {lines[-1] if lines else 'medgo-inference failed'}")
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


def evaluate_pair(settings: TrainerSettings, opts: LoopOptions, baseline: Checkpoint,
                  candidate: Checkpoint, baseline_report: Path, candidate_report: Path) -> None:
    """Both checkpoints through one temporary server: same engine, items and settings."""
    from medgo_trainer.eval.client import EvalRequestError
    from medgo_trainer.eval.runner import run_eval

    baseline_report.parent.mkdir(parents=True, exist_ok=True)
    adapters = {baseline.id: Path(baseline.path), candidate.id: Path(candidate.path)}
    with temporary_server(candidate.base, adapters, opts,
                          baseline_report.parent / "vllm.log") as url:
        for checkpoint, out in ((baseline, baseline_report), (candidate, candidate_report)):
            try:
                run_eval(url, checkpoint.id, list(opts.tasks), limit=opts.limit,
                         max_tokens=opts.max_tokens, seed=opts.seed, out=out,
                         data_dir=settings.data_dir, progress=opts.progress)
            except EvalRequestError as exc:
                raise LoopError(f"evaluating {checkpoint.id}: {exc}") from exc


@contextmanager
def temporary_server(base: str, adapters: dict[str, Path], opts: LoopOptions,
                     log_path: Path) -> Iterator[str]:
    """
    `medgo-inference` serving `base` plus `adapters`, for as long as the block runs.

    The launcher is the inference service's production entry point; its own supervisor
    (start on a free port, wait for the model, stop the whole process group) is reused
    rather than re-implemented (`medgo_common.supervise`); the inference package must be
    installed beside the trainer, since evaluating means serving. The LoRA
    rank reserved is the largest adapter's, rounded up to a rank vLLM accepts (a DPO
    serving adapter is SFT and DPO concatenated).
    """
    import json

    from medgo_common.schemas.serving import LORA_RANKS
    from medgo_common.supervise import ServerStartError, launched_server

    rank = max(json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))["r"]
               for p in adapters.values())
    env = {
        "MEDGO_INFERENCE_BASE_MODEL": base,
        "MEDGO_INFERENCE_ADAPTERS": ",".join(f"{n}={p}" for n, p in adapters.items()),
        "MEDGO_INFERENCE_MAX_LORA_RANK": str(min(r for r in LORA_RANKS if r >= rank)),
    } | serve_env(opts)
    try:
        with launched_server(env, log_path, opts.serve_timeout_s) as url:
            yield url
    except ServerStartError as exc:
        raise LoopError(f"could not serve the checkpoints for evaluation: {exc}") from exc


EPILOG = """examples:
  # local stack (scripts/up.sh): feedback on :8002 with a trainer token
  export MEDGO_TRAINER_FEEDBACK_TOKEN=tr-secret
  medgo-train loop --min-pairs 4 --set trl.max_steps=10
  # last week's ratings, a stricter policy, more items per task
  medgo-train loop --since 2026-11-18T00:00:00Z --min-pairs 200 \\
      --policy policy.yaml --limit 200
  # the 72B recipe, evaluated by a temporary 8-GPU vLLM
  medgo-train loop --recipe medgo-72b-dpo --id-prefix medgo-72b --min-pairs 2000 \\
      --serve-set tensor_parallel_size=8 --serve-set max_model_len=4096
"""


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `medgo-train loop`."""
    p = subparsers.add_parser(
        "loop", help="ratings → DPO → evaluate → register → gated promote",
        description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--recipe", default=LoopOptions.recipe,
                   help="DPO recipe, file or packaged name (default medgo-tiny-dpo); base, "
                        "adapter and data are set by the loop")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a recipe key, e.g. trl.max_steps=10")
    p.add_argument("--min-pairs", type=int, default=LoopOptions.min_pairs,
                   help=f"refuse to train on fewer pairs (default {LoopOptions.min_pairs})")
    p.add_argument("--since", help="export ratings of interactions from (ISO 8601, with zone)")
    p.add_argument("--until", help="... until this time (excluded)")
    p.add_argument("--min-raters", type=int, help="only interactions this many clinicians rated")
    p.add_argument("--id", dest="checkpoint_id",
                   help="checkpoint id (default <prefix>-dpo-<data hash>)")
    p.add_argument("--id-prefix", default=LoopOptions.id_prefix, help="default medgo-tiny")
    p.add_argument("--tasks", default=",".join(LoopOptions.tasks),
                   help="evaluation tasks or groups, comma separated (see `medgo-eval tasks`)")
    p.add_argument("--limit", type=int, default=LoopOptions.limit, help="items per task")
    p.add_argument("--max-tokens", type=int, default=LoopOptions.max_tokens,
                   help="cap on every answer's length")
    p.add_argument("--seed", type=int, default=LoopOptions.seed, help="evaluation sample seed")
    p.add_argument("--policy", type=Path, help="gate policy YAML (default: eval's default)")
    p.add_argument("--serve-set", action="append", default=[], metavar="NAME=VALUE",
                   help="inference setting for the temporary server, e.g. max_model_len=512")
    p.add_argument("--serve-timeout", type=float, default=LoopOptions.serve_timeout_s,
                   help="seconds to wait for the temporary server")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> dict[str, Any]:
    serve = {}
    for item in args.serve_set:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise LoopError(f"--serve-set {item!r} is not NAME=VALUE")
        serve[name] = value
    opts = LoopOptions(
        recipe=args.recipe, overrides=tuple(args.overrides), min_pairs=args.min_pairs,
        since=args.since, until=args.until, min_raters=args.min_raters,
        checkpoint_id=args.checkpoint_id, id_prefix=args.id_prefix,
        tasks=tuple(t.strip() for t in args.tasks.split(",") if t.strip()), limit=args.limit,
        max_tokens=args.max_tokens, seed=args.seed, policy=args.policy, serve_settings=serve,
        serve_timeout_s=args.serve_timeout, progress=not args.no_progress)
    return run_loop(TrainerSettings(), opts)
