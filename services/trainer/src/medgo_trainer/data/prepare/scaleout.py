"""`prepare --engine datatrove`: the prepare pipeline as datatrove stages, any executor.

The same steps as `pipeline.prepare_corpus`, cut into stages that each finish before the
next starts (`depends=`), so no stage needs the whole corpus in one process's memory:

  stage            tasks     blocks
  clean            --tasks   CorpusReader → CleanScrubStep → work/data/clean/<task>.jsonl
  exact-sigs       --tasks   ExactDedupSignature (the cleaned, redacted text)
  exact-find       1         ExactFindDedups: every copy of a text but the first
  minhash-sigs     --tasks   ExactDedupFilter → MinhashDedupSignature (character 5-grams)
  minhash-buckets  b bands   MinhashDedupBuckets: sorted signature files, one task per band
  minhash-cluster  1         MinhashDedupCluster: union-find over the duplicate pairs
  write            --tasks   ExactDedupFilter → MinhashDedupFilter → part-<task>.jsonl
  publish          1         report.json from every task's stats; shards moved to OUT

Exact duplicates get datatrove's own exact stage: MinHash would remove them too (equal
texts share every band), but the report keeps `exact_dup` and `near_dup` apart, as the
local engine's does. The MinHash bands and rows are datasketch's choice for the local
engine's threshold and permutation count, so both engines have the same S-curve.

Executors (datatrove's, chosen by name): `local` (LocalPipelineExecutor, `--workers`
processes here), `slurm` (SlurmPipelineExecutor: one job array per stage, chained
`afterok`; returns once submitted, the publish job writes the report) and `ray`
(RayPipelineExecutor, for a Ray cluster such as a KubeRay RayJob: the stages run one after
another from this process, each checked complete before the next). Intermediate data and
logs live under the work directory (default OUT/.datatrove), which on a cluster must be
shared storage. Re-running the same command after a failure resumes: datatrove skips the
tasks its logs mark complete. After success, only the logs (and per-task stats) remain.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
import shutil
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from datasketch import MinHashLSH
from datatrove.data import Document, DocumentsPipeline
from datatrove.executor import (
    LocalPipelineExecutor,
    RayPipelineExecutor,
    SlurmPipelineExecutor,
)
from datatrove.executor.base import PipelineExecutor
from datatrove.pipeline.base import PipelineStep
from datatrove.pipeline.dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
    MinhashConfig,
    MinhashDedupBuckets,
    MinhashDedupCluster,
    MinhashDedupFilter,
    MinhashDedupSignature,
)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.stats import MetricStats
from datatrove.utils.text import TextNormConfig
from medgo_trainer.data.prepare.clean import CorpusFormatError
from medgo_trainer.data.prepare.datatrove_steps import (
    TASK_KEY,
    ChineseCharTokenizer,
    CleanScrubStep,
    CorpusReader,
    ShardWriter,
    Tally,
)
from medgo_trainer.data.prepare.dedup import SHINGLE, DedupConfig
from medgo_trainer.data.prepare.pipeline import (
    STEPS,
    PrepareReport,
    StepCount,
    StepsConfig,
    corpus_files,
)

EXECUTORS = ("local", "slurm", "ray")
# datatrove's default hash is xxhash, but xxhash 4 (our lock; datatrove asks for <4)
# refuses `str`, which both dedup signature blocks hash: SHA-1, datatrove's other one.
_HASH = HashConfig(precision=64, hash_fc="sha1")
_AS_IS = TextNormConfig(lowercase=False, remove_punctuation=False, norm_unicode_diacritics=False,
                        norm_numbers=False)
# ExactDedupSignature stores a document's priority in 16 bits and keeps the highest.
_MAX_PRIORITY = 65535


class ScaleOutError(RuntimeError):
    """The chosen executor cannot run here (its package or scheduler is missing)."""


@dataclass(frozen=True)
class ClusterOptions:
    """Resources per task on Slurm and Ray (the local executor ignores them)."""

    partition: str = "cpu"
    time: str = "12:00:00"
    cpus_per_task: int = 2
    mem_per_cpu_gb: float = 4


@dataclass(frozen=True)
class ScaleOutConfig(StepsConfig):
    """`tasks` shards of the corpus for the per-document stages, `workers` run at once."""

    tasks: int = 4
    workers: int = 2
    executor: str = "local"
    work_dir: Path | None = None  # default OUT/.datatrove; shared storage on a cluster
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    seed: int = 1  # MinHash hash-function seed, the same in every task

    def __post_init__(self) -> None:
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {EXECUTORS}, got {self.executor!r}")
        if not 1 <= self.tasks < _MAX_PRIORITY:
            raise ValueError(f"tasks must be within [1, {_MAX_PRIORITY - 1}], got {self.tasks}")
        if self.workers < 1:
            raise ValueError(f"workers must be at least 1, got {self.workers}")


def minhash_config(dedup: DedupConfig, seed: int) -> MinhashConfig:
    """Character 5-grams and datasketch's bands × rows for our threshold (0.7 → 14 × 9)."""
    lsh = MinHashLSH(threshold=dedup.threshold, num_perm=dedup.num_perm)
    return MinhashConfig(n_grams=SHINGLE, num_buckets=lsh.b, hashes_per_bucket=lsh.r, seed=seed,
                         hash_config=_HASH, norm_config=_AS_IS)


def _text(doc: Document) -> str:
    return doc.text


def _corpus_order(doc: Document) -> int:
    """Exact de-dup keeps the highest priority, then the lowest index: the first copy."""
    return _MAX_PRIORITY - doc.metadata[TASK_KEY]


class Stage(NamedTuple):
    name: str
    pipeline: list[PipelineStep]
    tasks: int


class StatKeys(NamedTuple):
    """Names of the blocks whose stats make the report (`str(block)`, as datatrove saves)."""

    reader: str
    clean: str
    exact: str
    after_exact: str
    near: str
    kept: str


def _stage_totals(log_dir: Path) -> dict[str, Counter]:
    """One stage's per-task stats files, added up: {block name: {metric: total}}."""
    totals: dict[str, Counter] = defaultdict(Counter)
    for path in sorted((log_dir / "stats").glob("*.json")):
        for block in json.loads(path.read_text()):
            for metric, value in block["stats"].items():
                totals[block["name"]][metric] += MetricStats.from_dict(value).total
    return totals


def report_from_stats(clean: dict[str, Counter], write: dict[str, Counter],
                      keys: StatKeys) -> PrepareReport:
    """The local engine's report rows, from the `clean` and `write` stages' stats."""
    cleaner, after_exact, kept = clean[keys.clean], write[keys.after_exact], write[keys.kept]

    def step(docs: float, tokens: float) -> StepCount:
        return StepCount(int(docs), int(tokens))

    report = PrepareReport(input=step(cleaner["input"], cleaner["input_tokens"]),
                           kept=step(kept["passed"], kept["passed_tokens"]),
                           input_bytes=int(clean[keys.reader]["input_bytes"]))
    for name in STEPS[:-2]:  # the clean-stage rows; the two dedup rows follow
        report.removed[name] = step(cleaner[name], cleaner[f"{name}_tokens"])
    # datatrove's dedup filters count documents only; tokens are what stopped passing.
    report.removed["exact_dup"] = step(write[keys.exact]["dropped"],
                                       cleaner["forwarded_tokens"] - after_exact["passed_tokens"])
    report.removed["near_dup"] = step(write[keys.near]["dropped"],
                                      after_exact["passed_tokens"] - kept["passed_tokens"])
    report.phi_replaced = {k.removeprefix("phi_"): int(v) for k, v in sorted(kept.items())
                           if k.startswith("phi_")}
    return report


class PublishStep(PipelineStep):
    """Last stage (one task): the report from every task's stats, shards moved into OUT.

    It runs where the stages ran (a Slurm job, a Ray task), so a submitted run needs no
    process waiting for it. Shards move only now, after every stage succeeded, so OUT
    never holds a partial corpus; the intermediate data is deleted, the logs are kept.
    """

    type = "🩺 - MEDGO"
    name = "📦 publish shards + report"

    def __init__(self, work: Path, out_dir: Path, keys: StatKeys, started: float) -> None:
        super().__init__()
        self.work, self.out_dir, self.keys, self.started = work, out_dir, keys, started

    def run(self, data: DocumentsPipeline = None, rank: int = 0, world_size: int = 1) -> None:
        logs = self.work / "logs"
        report = report_from_stats(_stage_totals(logs / "clean"), _stage_totals(logs / "write"),
                                   self.keys)
        digest = hashlib.sha256()
        for shard in sorted((self.work / "data" / "shards").glob("part-*.jsonl")):
            with shard.open("rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            shutil.move(shard, self.out_dir / shard.name)
            report.shards.append(shard.name)
        report.snapshot_sha256 = digest.hexdigest()
        report.seconds = time.time() - self.started
        (self.out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
        shutil.rmtree(self.work / "data")


def build_stages(files: list[Path], out_dir: Path, work: Path,
                 config: ScaleOutConfig) -> list[Stage]:
    """The stage list every executor runs (pure: builds blocks, touches no file)."""
    data = work / "data"
    exact = ExactDedupConfig(content_getter=_text, document_priority=_corpus_order,
                             hash_config=_HASH)
    minhash = minhash_config(config.dedup, config.seed)
    reader, clean = CorpusReader(files), CleanScrubStep(config.clean)

    def cleaned() -> JsonlReader:
        # Every stage that reads the cleaned corpus reads it alike, so document i of
        # task t is the same document for the signature and the filter blocks.
        return JsonlReader(str(data / "clean"))

    exact_filter, near_filter = (ExactDedupFilter(str(data / "exact_dups"), exact),
                                 MinhashDedupFilter(str(data / "minhash_remove")))
    after_exact, kept = Tally("after exact dedup"), Tally("kept")
    keys = StatKeys(str(reader), str(clean), str(exact_filter), str(after_exact),
                    str(near_filter), str(kept))
    return [
        Stage("clean", [reader, clean, JsonlWriter(str(data / "clean"),
                                                   output_filename="${rank}.jsonl",
                                                   compression=None)], config.tasks),
        Stage("exact-sigs", [cleaned(), ExactDedupSignature(str(data / "exact_sigs"), exact)],
              config.tasks),
        Stage("exact-find", [ExactFindDedups(str(data / "exact_sigs"),
                                             str(data / "exact_dups"), exact)], 1),
        Stage("minhash-sigs", [cleaned(), ExactDedupFilter(str(data / "exact_dups"), exact),
                               MinhashDedupSignature(str(data / "minhash_sigs"), minhash,
                                                     language=ChineseCharTokenizer())],
              config.tasks),
        Stage("minhash-buckets", [MinhashDedupBuckets(str(data / "minhash_sigs"),
                                                      str(data / "minhash_buckets"),
                                                      config=minhash)], minhash.num_buckets),
        Stage("minhash-cluster", [MinhashDedupCluster(str(data / "minhash_buckets"),
                                                      str(data / "minhash_remove"),
                                                      config=minhash)], 1),
        Stage("write", [cleaned(), exact_filter, after_exact, near_filter, kept,
                        ShardWriter(str(data / "shards"))], config.tasks),
        Stage("publish", [PublishStep(work, out_dir, keys, time.time())], 1),
    ]


def _venv_activate() -> str | None:
    """This interpreter's venv, activated by each Slurm job (it must be on shared storage)."""
    activate = Path(sys.prefix) / "bin" / "activate"
    return str(activate) if activate.is_file() else None


def make_executors(stages: list[Stage], work: Path,
                   config: ScaleOutConfig) -> list[PipelineExecutor]:
    """One datatrove executor per stage, each `depends=` on the one before (pure)."""
    executors: list[PipelineExecutor] = []
    cluster = config.cluster
    for stage in stages:
        common = dict(pipeline=stage.pipeline, tasks=stage.tasks,
                      logging_dir=str(work / "logs" / stage.name),
                      depends=executors[-1] if executors else None)
        if config.executor == "local":
            executor = LocalPipelineExecutor(**common, workers=min(config.workers, stage.tasks))
        elif config.executor == "slurm":
            executor = SlurmPipelineExecutor(
                **common, workers=config.workers, job_name=f"medgo-prepare-{stage.name}",
                partition=cluster.partition, time=cluster.time,
                cpus_per_task=cluster.cpus_per_task, mem_per_cpu_gb=cluster.mem_per_cpu_gb,
                venv_path=_venv_activate())
        else:
            executor = RayPipelineExecutor(
                **common, workers=config.workers, cpus_per_task=cluster.cpus_per_task,
                mem_per_cpu_gb=cluster.mem_per_cpu_gb)
        executors.append(executor)
    return executors


def require_executor(name: str) -> None:
    """Fail clearly, before anything is written, where the executor cannot run."""
    if name == "ray" and importlib.util.find_spec("ray") is None:
        raise ScaleOutError("--executor ray needs the `ray` package, which this environment "
                            "lacks: pip install 'ray[default]' (KubeRay images include it)")
    if name == "slurm" and shutil.which("sbatch") is None:
        raise ScaleOutError("--executor slurm needs Slurm's `sbatch` on PATH: run it on a "
                            "Slurm login node")


def _require_ray_room(cluster: ClusterOptions) -> None:
    """
    A task asks Ray for `cpus_per_task` CPUs and their memory on one node; where no node
    has that much, Ray waits for it forever. Refuse before the first stage instead.
    """
    import ray

    need = {"CPU": cluster.cpus_per_task, "memory": cluster.cpus_per_task
            * cluster.mem_per_cpu_gb * 2**30}
    nodes = [node["Resources"] for node in ray.nodes() if node["Alive"]]
    if not any(all(res.get(k, 0) >= v for k, v in need.items()) for res in nodes):
        largest = max(nodes, key=lambda res: res.get("CPU", 0), default={})
        raise ScaleOutError(
            f"no node of the Ray cluster fits one task ({cluster.cpus_per_task} CPUs, "
            f"{need['memory'] / 2**30:.1f} GB; the largest node has {largest.get('CPU', 0):g} "
            f"CPUs, {largest.get('memory', 0) / 2**30:.1f} GB): lower --cpus-per-task or "
            "--mem-per-cpu-gb")


def _stage_failure(stage: str, ranks: list[int], work: Path) -> Exception:
    """
    Why a stage's tasks did not complete, from their logs: a malformed corpus file is the
    same `CorpusFormatError` as on the other executors (file:line), anything else names
    the logs to read.
    """
    logs = [work / "logs" / stage / "logs" / f"task_{rank:05d}.log" for rank in ranks]
    for log in logs:
        text = log.read_text(encoding="utf-8", errors="replace") if log.is_file() else ""
        if found := re.search(r"CorpusFormatError: (.+)", text):
            return CorpusFormatError(found.group(1).strip())
    return ScaleOutError(f"stage {stage}: tasks {ranks} did not complete on the Ray cluster; "
                         f"see {', '.join(map(str, logs))}")


def _run_on_ray(stages: list[Stage], executors: list[PipelineExecutor], work: Path,
                cluster: ClusterOptions) -> None:
    """
    Run the stages one after another on the Ray cluster at RAY_ADDRESS (inside a RayJob,
    the one it runs in), stopping at the first that did not complete. datatrove's
    RayPipelineExecutor would, for a failed `depends=` stage, poll its completions every
    two minutes forever; here the stage's own error is raised instead.
    """
    import ray  # checked by require_executor

    connected = not ray.is_initialized()
    if connected:
        ray.init()
    try:
        _require_ray_room(cluster)
        for stage, executor in zip(stages, executors, strict=True):
            executor.run()
            if failed := executor.get_incomplete_ranks(range(executor.world_size)):
                raise _stage_failure(stage.name, failed, work)
    finally:
        if connected:
            ray.shutdown()


def prepare_corpus_datatrove(inputs: list[Path], out_dir: Path,
                             config: ScaleOutConfig) -> PrepareReport | None:
    """Run every stage; the report (also OUT/report.json), or None once Slurm has the jobs."""
    require_executor(config.executor)
    files = corpus_files(inputs, out_dir)
    out_dir = out_dir.resolve()  # tasks on other nodes do not share this cwd
    work = (config.work_dir or out_dir / ".datatrove").resolve()
    stages = build_stages(files, out_dir, work, config)
    executors = make_executors(stages, work, config)
    try:
        if config.executor == "ray":
            _run_on_ray(stages, executors, work, config.cluster)
        else:
            executors[-1].run()  # runs (or submits) its `depends=` chain first
    except CorpusFormatError:
        shutil.rmtree(work, ignore_errors=True)  # bad input: nothing to resume
        raise
    if config.executor == "slurm":
        return None
    return PrepareReport.from_dict(json.loads((out_dir / "report.json").read_text()))
