"""`prepare_corpus`: stream raw files through clean → deid → dedup into JSONL shards.

Per-document work (normalise, filter, redact, MinHash signature) runs in a process
pool, fed in bounded batches so memory stays constant however large the corpus
(`Pool.imap` would read the whole input ahead). De-dup is one sequential pass in the
parent, in corpus order. Shards are written to a temporary directory and moved into
place only when the whole corpus went through, so a bad file leaves nothing behind.

`--engine datatrove` runs the same steps as datatrove stages instead (scaleout.py):
`--tasks` shards of the corpus, `--workers` of them at a time, on this machine
(`--executor local`) or as Slurm job arrays / Ray tasks for a corpus that one machine
cannot hold (`--executor slurm|ray`, with `--work-dir` on shared storage).
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from medgo_trainer.data.prepare.clean import (
    CleanConfig,
    Document,
    clean_text,
    count_tokens,
    iter_corpus_files,
    read_documents,
    record_reader,
)
from medgo_trainer.data.prepare.dedup import DedupConfig, Deduplicator, signature
from medgo_trainer.data.prepare.deid import scrub

# Report rows, in pipeline order.
STEPS = ("boilerplate", "length", "language", "deid_error", "exact_dup", "near_dup")


@dataclass(frozen=True)
class StepsConfig:
    """The steps' own knobs, the same whichever engine runs them."""

    clean: CleanConfig = field(default_factory=CleanConfig)
    dedup: DedupConfig = field(default_factory=DedupConfig)


@dataclass(frozen=True)
class PrepareConfig(StepsConfig):
    """The local engine: a process pool of `workers`, shards of `shard_docs` documents."""

    workers: int = 1
    batch_docs: int = 512
    shard_docs: int = 50_000


@dataclass
class StepCount:
    docs: int = 0
    tokens: int = 0


@dataclass
class PrepareReport:
    input: StepCount = field(default_factory=StepCount)
    removed: dict[str, StepCount] = field(default_factory=lambda: {s: StepCount() for s in STEPS})
    kept: StepCount = field(default_factory=StepCount)
    phi_replaced: dict[str, int] = field(default_factory=dict)
    input_bytes: int = 0
    seconds: float = 0.0
    shards: list[str] = field(default_factory=list)
    snapshot_sha256: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> PrepareReport:
        """Read back `report.json` (the datatrove engine's report is written by a task)."""
        return cls(**{**data, "input": StepCount(**data["input"]),
                      "kept": StepCount(**data["kept"]),
                      "removed": {k: StepCount(**v) for k, v in data["removed"].items()}})

    def table(self) -> str:
        """The human-readable summary printed by `medgo-train prepare`."""
        rows = [("input", self.input.docs, self.input.tokens)]
        rows += [(f"- {name}", c.docs, c.tokens) for name, c in self.removed.items()]
        rows.append(("kept", self.kept.docs, self.kept.tokens))
        lines = [f"{'step':<14}{'docs':>10}{'tokens':>14}"]
        lines += [f"{name:<14}{docs:>10}{tokens:>14}" for name, docs, tokens in rows]
        mb_s = self.input_bytes / 1e6 / self.seconds if self.seconds else 0.0
        lines.append(f"PHI replaced: {dict(sorted(self.phi_replaced.items())) or 'none'}")
        lines.append(f"{self.input_bytes / 1e6:.2f} MB in {self.seconds:.2f} s ({mb_s:.2f} MB/s)")
        return "\n".join(lines)


@dataclass(frozen=True)
class Cleaned:
    raw_tokens: int
    text: str | None
    dropped_by: str | None
    phi: Counter[str]


def clean_and_scrub(text: str, clean: CleanConfig) -> Cleaned:
    """The per-document work both engines share: clean, then redact (failing closed)."""
    raw_tokens = count_tokens(text)
    cleaned, dropped_by = clean_text(text, clean)
    phi: Counter[str] = Counter()
    if cleaned is not None:
        cleaned, phi = scrub(cleaned)
        dropped_by = None if cleaned is not None else "deid_error"
    return Cleaned(raw_tokens, cleaned, dropped_by, phi)


def shard_line(doc_id: str, text: str, source: str) -> str:
    """One shard row; both engines write exactly this, so their snapshot hashes compare."""
    return json.dumps({"id": doc_id, "text": text, "source": source}, ensure_ascii=False)


def corpus_files(inputs: list[Path], out_dir: Path) -> list[Path]:
    """The corpus files under `inputs`, checked with `out_dir` before anything is written."""
    files = list(iter_corpus_files(inputs))
    if not files:
        raise FileNotFoundError(f"no corpus files (.jsonl/.json/.txt/.csv) under {inputs}")
    for path in files:
        record_reader(path)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.glob("part-*.jsonl")):
        raise FileExistsError(f"{out_dir} already holds shards; choose an empty output directory")
    return files


@dataclass(frozen=True)
class _Processed:
    doc: Document
    cleaned: Cleaned
    hashvalues: np.ndarray | None


def _process(doc: Document, *, clean: CleanConfig, num_perm: int) -> _Processed:
    """The per-document work, run in a worker process."""
    cleaned = clean_and_scrub(doc.text, clean)
    text = cleaned.text
    return _Processed(doc, cleaned, signature(text, num_perm) if text is not None else None)


def _batches(docs: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(docs)
    while batch := list(islice(it, size)):
        yield batch


class _ShardWriter:
    """Rotating JSONL shards plus a running SHA-256 of their content (the data snapshot)."""

    def __init__(self, directory: Path, shard_docs: int) -> None:
        self.directory = directory
        self.shard_docs = shard_docs
        self.names: list[str] = []
        self.digest = hashlib.sha256()
        self._fh = None
        self._count = 0

    def write(self, doc: Document, text: str) -> None:
        if self._fh is None or self._count >= self.shard_docs:
            self.close()
            name = f"part-{len(self.names):05d}.jsonl"
            self.names.append(name)
            self._fh = (self.directory / name).open("w", encoding="utf-8")
            self._count = 0
        line = shard_line(doc.id, text, doc.source)
        self._fh.write(line + "\n")
        self.digest.update(line.encode("utf-8") + b"\n")
        self._count += 1

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _documents(files: list[Path], report: PrepareReport) -> Iterator[Document]:
    for path in files:
        report.input_bytes += path.stat().st_size
        yield from read_documents(path)


def prepare_corpus(inputs: list[Path], out_dir: Path, config: PrepareConfig) -> PrepareReport:
    """Prepare every corpus file under `inputs` into `out_dir/part-*.jsonl` + `report.json`."""
    files = corpus_files(inputs, out_dir)
    report = PrepareReport()
    dedup = Deduplicator(config.dedup)
    work = functools.partial(_process, clean=config.clean, num_perm=config.dedup.num_perm)
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=".prepare-", dir=out_dir))
    writer = _ShardWriter(staging, config.shard_docs)
    pool = multiprocessing.get_context("spawn").Pool(config.workers) if config.workers > 1 else None
    try:
        for batch in _batches(_documents(files, report), config.batch_docs):
            results = pool.map(work, batch) if pool else [work(d) for d in batch]
            for item in results:
                _account(item, dedup, writer, report)
        writer.close()
        for name in writer.names:
            (staging / name).rename(out_dir / name)
    finally:
        if pool is not None:
            pool.terminate()
        writer.close()
        shutil.rmtree(staging, ignore_errors=True)
    report.seconds = time.perf_counter() - started
    report.shards = writer.names
    report.snapshot_sha256 = writer.digest.hexdigest()
    (out_dir / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _account(item: _Processed, dedup: Deduplicator, writer: _ShardWriter, report: PrepareReport):
    cleaned, text = item.cleaned, item.cleaned.text
    report.input.docs += 1
    report.input.tokens += cleaned.raw_tokens
    dropped_by = cleaned.dropped_by
    if text is not None:
        dropped_by = dedup.check(item.doc.id, text, item.hashvalues)
    if dropped_by is not None:
        step = report.removed[dropped_by]
        step.docs += 1
        step.tokens += count_tokens(text) if text is not None else cleaned.raw_tokens
        return
    for kind, n in cleaned.phi.items():
        report.phi_replaced[kind] = report.phi_replaced.get(kind, 0) + n
    report.kept.docs += 1
    report.kept.tokens += count_tokens(text)
    writer.write(item.doc, text)
