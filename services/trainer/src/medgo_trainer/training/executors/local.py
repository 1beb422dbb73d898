"""The local executor: one training job as a child process, logs to a file.

With `nproc > 1` the job is started under `torchrun` (`python -m torch.distributed.run
--standalone`), which launches one rank per process exactly as the Kubernetes executor
does per node. The child gets its own process group, so `cancel` stops torchrun *and*
its ranks. Progress is read back from the log (the Trainer's `step/total` bar), which
keeps the executor independent of the process it watches: the job API can pick a job
back up after a restart from nothing but its pid and log path.

Besides the training stages it runs `build-sft`, the SFT data build: the same
`medgo-train <stage> --recipe R --out DIR --set ...` shape, progress bar and closing
`metrics.json`, but one process (nothing to distribute) and never on Kubernetes.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

STAGES = ("pretrain", "sft", "dpo", "kto")  # training: torchrun here, or Kubernetes
JOB_STAGES = (*STAGES, "build-sft")  # what this executor runs
# The Trainer's bar has no description ("\r 40%|####  | 2/5 [..."); bars of other work
# (dataset maps, shard writing) start with one ("Map: 100%|...") and are skipped.
_PROGRESS = re.compile(rb"(?:^|[\r\n])\s*\d+%\|[^|\r\n]*\| (\d+)/(\d+) \[")
_TAIL_BYTES = 8192


def build_command(
    stage: str, recipe: str, out_dir: Path, overrides: list[str] | tuple[str, ...] = (),
    *, nproc: int = 1,
) -> list[str]:
    """The argv of one job (pure): the stage CLI, under torchrun when `nproc > 1`."""
    if stage not in JOB_STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(JOB_STAGES)}")
    if nproc < 1:
        raise ValueError(f"nproc must be at least 1, got {nproc}")
    if nproc > 1 and stage not in STAGES:
        raise ValueError(f"{stage} runs in one process; nproc must be 1, got {nproc}")
    args = [stage, "--recipe", recipe, "--out", str(out_dir)]
    for item in overrides:
        args += ["--set", item]
    if nproc == 1:
        return [sys.executable, "-m", "medgo_trainer.cli", *args]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={nproc}", "-m", "medgo_trainer.cli"]
    return [*launcher, *args]


@dataclass(frozen=True)
class LocalJob:
    pid: int
    log_path: Path


def start(command: list[str], log_path: Path, *, env: dict[str, str] | None = None,
          cwd: Path | None = None) -> tuple[LocalJob, subprocess.Popen]:
    """Start `command` detached into its own process group, stdout+stderr to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=cwd, start_new_session=True,
        )
    return LocalJob(proc.pid, log_path), proc


def cancel(pid: int) -> bool:
    """SIGTERM the job's process group; False when it had already gone."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True


def is_alive(pid: int) -> bool:
    """Whether a job started by an earlier run of the service is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def progress(log_path: Path) -> tuple[int, int] | None:
    """The latest `step/total` of the training bar, read from the end of the job's log."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - _TAIL_BYTES))
            tail = fh.read()
    except FileNotFoundError:
        return None
    matches = _PROGRESS.findall(tail)
    return (int(matches[-1][0]), int(matches[-1][1])) if matches else None


def read_log(log_path: Path, *, max_bytes: int = 1 << 20) -> str:
    """The last `max_bytes` of a job's log, decoded leniently (it may end mid-character)."""
    try:
        with log_path.open("rb") as fh:
            fh.seek(max(0, log_path.stat().st_size - max_bytes))
            return fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""


def run_and_follow(command: list[str], log_path: Path) -> int:
    """Run a job in the foreground, showing its `step/total` on stderr; its exit code."""
    _, proc = start(command, log_path)
    last = None
    while proc.poll() is None:
        step = progress(log_path)
        if step and step != last:
            sys.stderr.write(f"\rstep {step[0]}/{step[1]}")
            last = step
        time.sleep(1)
    sys.stderr.write("\n")
    return proc.returncode
