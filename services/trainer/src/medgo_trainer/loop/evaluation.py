"""Step 5: both checkpoints served by one vLLM and evaluated on the same items."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medgo_trainer.loop.options import LoopError, LoopOptions, serve_env
from medgo_trainer.registry import Checkpoint
from medgo_trainer.settings import TrainerSettings


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
    from medgo_trainer.eval.client import EvalRequestError
    from medgo_trainer.eval.runner import run_eval

    for model, out in reports.items():
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            run_eval(endpoint, model, list(opts.tasks), limit=opts.limit,
                     max_tokens=opts.max_tokens, seed=opts.seed, out=out,
                     data_dir=settings.data_dir, progress=opts.progress)
        except EvalRequestError as exc:
            raise LoopError(f"evaluating {model}: {exc}") from exc


def serving_env(base: str, adapters: dict[str, Path], opts: LoopOptions) -> dict[str, str]:
    """
    The inference service's settings that serve `base` plus `adapters` for evaluation.

    The LoRA rank reserved is the largest adapter's, rounded up to a rank vLLM accepts;
    composed adapters are bounded by their recipe's `max_serving_rank`, so this is
    never above what production inference is configured for. `--serve-set` wins.
    """
    import json

    from medgo_common.schemas.serving import LORA_RANKS

    rank = max(json.loads((p / "adapter_config.json").read_text(encoding="utf-8"))["r"]
               for p in adapters.values())
    return {
        "MEDGO_INFERENCE_BASE_MODEL": base,
        "MEDGO_INFERENCE_ADAPTERS": ",".join(f"{n}={p}" for n, p in adapters.items()),
        "MEDGO_INFERENCE_MAX_LORA_RANK": str(min(r for r in LORA_RANKS if r >= rank)),
    } | serve_env(opts)


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

