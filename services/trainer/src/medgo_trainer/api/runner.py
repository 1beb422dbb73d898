"""Starts jobs through the local executor and keeps their status in the job store.

Status is refreshed when a job is looked at: a child of this process is polled for
its exit code; a job left running by a previous run of the service (its pid survived
the restart, being in its own session) is checked by pid, and when it is gone its
output decides — `metrics.json` is written only at the very end of a stage, so its
presence means success; without it the job was `interrupted` and can be re-run with
`trl.resume_from_checkpoint=last` from the same recipe (a `build-sft` job is simply
submitted again with a new output directory).

What a caller may ask for at all (recipe names, override keys, paths) is
`policy.py`'s; every kind of job is then one stage to the runner: `_CHECKS` says how
its recipe is validated before a process starts (a training recipe, or a mixture with
its source files); the command, its log, progress and completion marker are the same for all. The
build-sft child reads the data folder from the same settings (`MEDGO_TRAINER_DATA_DIR`)
as this service, so it builds from what was validated here.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from pathlib import Path

from medgo_common.errors import MedgoError
from prometheus_client import Counter

from medgo_trainer.api.policy import JobPolicy, override_keys
from medgo_trainer.api.schemas import JobCreate, JobStatus
from medgo_trainer.api.store import JobRow, JobStore
from medgo_trainer.configfile import ConfigError
from medgo_trainer.data.sft.mixture import load_mixture, validate_sources
from medgo_trainer.outputs import METRICS_FILE
from medgo_trainer.training.executors import local
from medgo_trainer.training.recipe import load_recipe

CANCEL_GRACE_S = 30


def _check_training(body: JobCreate, path: Path, policy: JobPolicy) -> None:
    """The training recipe passes the policy (before anything it names is opened),
    loads with its data files, and is for this stage."""
    overridden = override_keys(body.overrides)
    recipe = load_recipe(path, body.overrides, screen=lambda raw, at:
                         policy.screen_training(raw, at, overridden))
    if recipe.stage != body.stage:
        raise MedgoError(422, f"recipe {body.recipe!r} is for stage {recipe.stage}, "
                         f"not {body.stage}", code="invalid_recipe", param="stage")


def _check_mixture(body: JobCreate, path: Path, policy: JobPolicy) -> None:
    """The mixture recipe loads and every source's files under the data folder are
    usable and inside the policy's directories."""
    policy.confine_sources(validate_sources(load_mixture(path, body.overrides),
                                            policy.data_dir))


#: Stage → the validation its recipe gets before any process starts (ConfigError → 422).
_CHECKS = {**dict.fromkeys(local.STAGES, _check_training), "build-sft": _check_mixture}


class JobRunner:
    def __init__(self, store: JobStore, jobs_dir: Path, max_running: int,
                 submitted: Counter, policy: JobPolicy) -> None:
        self.store = store
        self.submitted = submitted  # Prometheus: jobs started, by stage
        self.jobs_dir = jobs_dir
        self.policy = policy
        self.max_running = max_running
        self._procs: dict[str, subprocess.Popen] = {}
        self._cancelled: set[str] = set()
        self._lock = threading.Lock()

    def reconcile(self) -> None:
        """Bring every job recorded as running up to date (called at start-up)."""
        for job in self.store.running():
            self.refresh(job)

    def submit(self, body: JobCreate, caller: str) -> JobRow:
        """Check the request against the policy and validate the recipe fully (before
        any compute), then start the job on the very recipe file that was checked."""
        path = self.policy.find_recipe(body.recipe, body.stage)
        self.policy.check_overrides(body.stage, body.overrides)
        try:
            _CHECKS[body.stage](body, path, self.policy)
        except ConfigError as exc:
            raise MedgoError(422, str(exc), code="invalid_recipe", param="recipe") from None
        with self._lock:
            running = [j for j in self.store.running() if self.refresh(j).status is
                       JobStatus.running]
            if len(running) >= self.max_running:
                raise MedgoError(409, f"{len(running)} job(s) already running (limit "
                                 f"{self.max_running}); cancel one or wait",
                                 code="too_many_jobs", headers={"Retry-After": "60"})
            job_id = uuid.uuid4().hex[:12]
            job_dir = self.jobs_dir / job_id
            out_dir, log_path = job_dir / "out", job_dir / "job.log"
            command = local.build_command(body.stage, str(path), out_dir, body.overrides)
            handle, proc = local.start(command, log_path)
            self._procs[job_id] = proc
            self.submitted.labels(stage=body.stage).inc()
            return self.store.insert(job_id=job_id, stage=body.stage, recipe=body.recipe,
                                     overrides=body.overrides, pid=handle.pid, out_dir=out_dir,
                                     log_path=log_path, submitted_by=caller)

    def refresh(self, job: JobRow) -> JobRow:
        if job.status is not JobStatus.running:
            return job
        proc = self._procs.get(job.id)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return job
            status = JobStatus.succeeded if code == 0 else JobStatus.failed
            if job.id in self._cancelled:
                status = JobStatus.cancelled
            self.store.finish(job_id=job.id, status=status, exit_code=code)
            self._procs.pop(job.id, None)
        elif job.pid is not None and local.is_alive(job.pid):
            return job
        else:
            done = (Path(job.out_dir) / METRICS_FILE).exists()
            status = JobStatus.succeeded if done else JobStatus.interrupted
            self.store.finish(job_id=job.id, status=status, exit_code=None)
        return self.store.get(job_id=job.id)

    def cancel(self, job: JobRow) -> JobRow:
        job = self.refresh(job)
        if job.status is not JobStatus.running:
            raise MedgoError(409, f"job {job.id} is already {job.status.value}",
                             code="job_not_running")
        self._cancelled.add(job.id)
        if job.pid is not None:
            local.cancel(job.pid)
        proc = self._procs.pop(job.id, None)
        code = None
        if proc is not None:
            try:
                code = proc.wait(timeout=CANCEL_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
        self.store.finish(job_id=job.id, status=JobStatus.cancelled, exit_code=code)
        return self.store.get(job_id=job.id)
