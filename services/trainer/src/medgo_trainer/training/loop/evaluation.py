"""Step 5: both checkpoints served by one vLLM and evaluated on the same items."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.loop.options import LoopError, LoopOptions
from medgo_trainer.training.registry import Checkpoint


def evaluate_pair(settings: TrainerSettings, opts: LoopOptions, baseline: Checkpoint,
                  candidate: Checkpoint, reports: dict[str, Path]) -> None:
    """Both checkpoints through one temporary server: same engine, items and settings."""
    adapters = {baseline.id: Path(baseline.path), candidate.id: Path(candidate.path)}
    log_path = reports[baseline.id].parent / "vllm.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with temporary_server(serving_env(candidate.base, adapters, opts), log_path,
                          opts.serve_timeout_s) as url:
        evaluate_models(settings, opts, url, reports)


def evaluate_models(settings: TrainerSettings, opts: LoopOptions, endpoint: str,
                    reports: dict[str, Path]) -> None:
    """
    Each served model (checkpoint id → report path) on the same tasks, items and caps.

    The one evaluation code path: the local loop calls it on its temporary server, the
    Kubernetes evaluation Job (`medgo-train loop evaluate`) on its vLLM sidecar.
    """
    from medgo_trainer.evaluation.client import EvalRequestError
    from medgo_trainer.evaluation.runner import run_eval

    key = settings.inference_api_key.get_secret_value() if settings.inference_api_key else None
    for model, out in reports.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_eval(endpoint, model, list(opts.tasks), limit=opts.limit,
                     max_tokens=opts.max_tokens, seed=opts.seed, out=out,
                     data_dir=settings.data_dir, progress=opts.progress, api_key=key)
        except EvalRequestError as exc:
            raise LoopError(f"evaluating {model}: {exc}") from exc


def serving_env(base: str, adapters: dict[str, Path], opts: LoopOptions) -> dict[str, str]:
    """
    The inference service's settings that serve `base` plus `adapters` for evaluation
    (the `ServeRequest` contract of `medgo_common.schemas.serving`).

    The LoRA rank reserved is the largest adapter's, rounded up to a rank vLLM accepts;
    composed adapters are bounded by their recipe's `max_serving_rank`, so this is
    never above what production inference is configured for. `--serve-set` wins.
    """
    import json

    from medgo_common.schemas.serving import ServeRequest

    ranks = [json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))["r"]
             for p in adapters.values()]
    request = ServeRequest.for_adapters(base, {n: str(p) for n, p in adapters.items()}, ranks,
                                        opts.serve_settings)
    return request.to_env()


@contextmanager
def temporary_server(env: dict[str, str], log_path: Path, timeout_s: float) -> Iterator[str]:
    """
    `medgo-inference` with the settings `env`, for as long as the block runs.

    The launcher is the inference service's production entry point; its own supervisor
    (start on a free port, wait for the model, stop the whole process group) is reused
    rather than re-implemented (`medgo_common.supervise`); the inference package must be
    installed beside the trainer, since evaluating here means serving here.
    """
    from medgo_common.supervise import ServerStartError, launched_server

    try:
        with launched_server(env, log_path, timeout_s) as url:
            yield url
    except ServerStartError as exc:
        raise LoopError(f"could not serve the checkpoints for evaluation: {exc}") from exc


def evaluate_command(opts: LoopOptions, endpoint: str, reports: dict[str, Path]) -> list[str]:
    """`medgo-train loop evaluate ...` for `reports` with this run's evaluation flags."""
    argv = ["medgo-train", "loop", "evaluate", "--endpoint", endpoint]
    for model, report in reports.items():
        argv += ["--model", f"{model}={report}"]
    argv += ["--tasks", ",".join(opts.tasks), "--limit", str(opts.limit), "--seed",
             str(opts.seed), "--no-progress"]
    if opts.max_tokens is not None:
        argv += ["--max-tokens", str(opts.max_tokens)]
    return argv
