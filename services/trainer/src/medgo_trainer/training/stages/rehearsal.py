"""Rehearse a 72B stage on medgo-tiny: the production recipe, shrunk, under torchrun.

Before 64 GPUs are booked, every code path the 72B recipes take — DeepSpeed ZeRO-3 with
partitioned loading, LoRA on partitioned weights, bf16, gradient checkpointing, per-rank
shards, resuming after a kill — runs here on two CPU ranks, through the very command a
GPU job runs (`torchrun ... -m medgo_trainer.cli <stage>`, the local executor's
`build_command`). Only three kinds of key change (`ALLOWED_OVERRIDES`): where the model
and data are, how big the run is, and the learning rate, which scales with the model's
width (a 256-wide model moves nothing at 72B's 2e-5 in six steps). The backend is the
stage's own choice on a machine without CUDA (`backend.for_this_machine`).

The tests run pretrain and KTO once, SFT and DPO killed with SIGKILL mid-way and resumed;
`bench/trainer.py zero3` kills and resumes all four and times them.
"""

from __future__ import annotations

import ast
import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Recipe keys a rehearsal may override; every other key is the 72B recipe's own.
ALLOWED_OVERRIDES = frozenset({
    "base", "adapter", "reference", "data.train", "data.eval", "data.max_train_samples",
    "data.tokenized_cache", "trl.max_steps", "trl.max_length", "trl.save_steps",
    "trl.eval_steps", "trl.logging_steps", "trl.learning_rate", "trl.dataset_num_proc",
})
#: The sizes of a rehearsal: six optimizer steps, a checkpoint every two, a log every step.
SIZES = {"trl.max_steps": 6, "trl.max_length": 128, "trl.save_steps": 2, "trl.eval_steps": 2,
         "trl.logging_steps": 1, "trl.learning_rate": 5.0e-3, "trl.dataset_num_proc": 2}
_LOG_LINE = re.compile(r"^\{'loss': .*\}$", re.M)


@dataclass
class Launch:
    """One torchrun launch: its exit status, output and the steps it logged."""

    returncode: int
    output: str
    steps: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def overrides(paths: dict[str, str | list[str]], sizes: dict[str, object] | None = None
              ) -> list[str]:
    """`--set` values: the given paths (`base`, `data.train`, ...) and the sizes."""
    items = {**{k: v for k, v in paths.items()}, **(sizes or SIZES)}
    unknown = sorted(set(items) - ALLOWED_OVERRIDES)
    if unknown:
        raise ValueError(f"a rehearsal overrides only {sorted(ALLOWED_OVERRIDES)}, not {unknown}")
    out = []
    for key, value in items.items():
        shown = f"[{', '.join(value)}]" if isinstance(value, list) else str(value)
        out.append(f"{key}={shown}")
    return out


def logged_steps(output: str) -> list[dict[str, float]]:
    """The Trainer's per-step log lines (`{'loss': ...}`), as numbers, in order."""
    steps = []
    for line in _LOG_LINE.findall(output):
        row = ast.literal_eval(line)
        steps.append({k: float(v) for k, v in row.items()})
    return steps


def launch(stage: str, recipe: str, out: Path, sets: list[str], *, nproc: int = 2,
           kill_at_step: int | None = None, timeout: float = 900.0, cwd: Path | None = None
           ) -> Launch:
    """
    Run `medgo-train <stage>` under torchrun with `nproc` ranks; with `kill_at_step`,
    SIGKILL the whole job (torchrun and every rank) once that step's log line is out,
    as a node failure would.
    """
    from medgo_trainer.training.executors.local import build_command

    command = [*build_command(stage, recipe, out, sets, nproc=nproc), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=cwd, start_new_session=True)
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if kill_at_step is not None and len(logged_steps("".join(lines))) >= kill_at_step:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            if time.perf_counter() - started > timeout:
                os.killpg(proc.pid, signal.SIGKILL)
                raise TimeoutError(f"{stage} rehearsal ran over {timeout:.0f} s")
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    output = "".join(lines)
    return Launch(proc.returncode, output, logged_steps(output), time.perf_counter() - started)
