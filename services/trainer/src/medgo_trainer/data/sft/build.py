"""`build-sft`: recipe → validated sources → scrubbed, de-duplicated, leak-free mixture.

Order matters: PHI is scrubbed first so the duplicate and leakage checks see what
will be written; duplicates are dropped across sources in recipe order (the first
source listing a chat keeps it); then each source's pool is capped and weighted
with its own seeded generator, so changing one source never reshuffles another.
Each source's examples are examined in that generator's order until its cap is
met, so "duplicates" and "leakage" count what was examined, not the whole source.
The output is ``sft.jsonl`` (``{"messages"}`` rows, what the sft stage reads),
``provenance.jsonl`` (source, task, synthetic - line for line), ``leakage.jsonl``
(every removed example and the evaluation item it hit), the datasheet, and last
``metrics.json`` - the completion marker every stage writes, so the job API judges a
build the way it judges a training run.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medgo_common.phi import RedactionError, redact
from medgo_trainer.data.prepare.dedup import exact_key
from medgo_trainer.data.sft.builders import BUILDERS
from medgo_trainer.data.sft.datasheet import datasheet, write_datasheet
from medgo_trainer.data.sft.example import SftExample
from medgo_trainer.data.sft.leakage import Leak, LeakageGuard
from medgo_trainer.data.sft.mixture import Mixture, SourceSpec, validate_sources
from medgo_trainer.outputs import METRICS_FILE
from tqdm import tqdm

TRAIN_FILE = "sft.jsonl"


@dataclass
class Scrubber:
    """PHI redaction of every turn; an example the redactor fails on is dropped whole."""

    placeholders: Counter[str]
    examples_changed: int = 0
    failed: int = 0

    def __call__(self, example: SftExample) -> SftExample | None:
        messages, changed = [], False
        for message in example.messages:
            try:
                result = redact(message["content"])
            except RedactionError:
                self.failed += 1
                return None
            self.placeholders.update({str(k): v for k, v in result.counts.items() if v})
            changed = changed or result.text != message["content"]
            messages.append({"role": message["role"], "content": result.text})
        self.examples_changed += changed
        return SftExample(messages, example.source, example.task, example.synthetic,
                          example.meta) if changed else example


def _weighted(pool: list[SftExample], spec: SourceSpec, rng: random.Random) -> list[SftExample]:
    whole, fraction = divmod(spec.weight, 1)
    return pool * int(whole) + rng.sample(pool, round(fraction * len(pool)))


@dataclass
class _Tally:
    built: Counter[str]
    examined: Counter[str]
    duplicates: Counter[str]
    leaks: list[Leak]


def _pool(spec: SourceSpec, raw: list[SftExample], rng: random.Random, *, scrub: Scrubber,
          guard: LeakageGuard, seen: set[bytes], tally: _Tally) -> list[SftExample]:
    """Up to ``max_examples`` clean examples, examined in a seeded random order (so a
    small cap costs little, and which examples a cap keeps does not depend on file order)."""
    pool: list[SftExample] = []
    for candidate in rng.sample(raw, len(raw)):
        if spec.max_examples is not None and len(pool) >= spec.max_examples:
            break
        tally.examined[spec.name] += 1
        example = scrub(candidate)
        if example is None:
            continue
        key = exact_key(json.dumps(example.messages, ensure_ascii=False))
        if key in seen:
            tally.duplicates[spec.name] += 1
            continue
        seen.add(key)
        if (leak := guard.check(example)) is not None:
            tally.leaks.append(leak)
            continue
        pool.append(example)
    return pool


def _write_rows(chosen: list[SftExample], leaks: list[Leak], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / TRAIN_FILE).open("w", encoding="utf-8") as train, \
            (out_dir / "provenance.jsonl").open("w", encoding="utf-8") as prov:
        for example in chosen:
            train.write(json.dumps({"messages": example.messages}, ensure_ascii=False) + "\n")
            prov.write(json.dumps({"source": example.source, "task": example.task,
                                   "synthetic": example.synthetic, **example.meta},
                                  ensure_ascii=False) + "\n")
    with (out_dir / "leakage.jsonl").open("w", encoding="utf-8") as fh:
        for leak in leaks:
            fh.write(json.dumps(leak.__dict__, ensure_ascii=False) + "\n")


def build_mixture(mixture: Mixture, data_dir: Path, out_dir: Path, *,
                  guard: LeakageGuard | None = None, progress: bool = False) -> dict[str, Any]:
    """Build into ``out_dir`` (must be absent or empty); returns the datasheet.

    ``guard`` reuses an index already built with the mixture's leakage settings (it
    takes seconds to build; tests and the benchmark share one). ``progress`` draws a
    bar over the sources on stderr - the ``step/total`` a job's log is read for."""
    started = time.monotonic()
    if out_dir.exists() and any(out_dir.iterdir()):
        raise FileExistsError(f"{out_dir} is not empty; pick a new --out")
    inputs = validate_sources(mixture, data_dir)  # every bad input fails here, before writing
    if guard is None or guard.config != mixture.leakage:
        guard = LeakageGuard.from_eval_harness(data_dir, mixture.leakage)
    scrub = Scrubber(Counter())
    seen: set[bytes] = set()
    tally = _Tally(Counter(), Counter(), Counter(), [])
    chosen: list[SftExample] = []
    for spec in tqdm(mixture.sources, unit="source", disable=not progress):
        raw = list(BUILDERS[spec.name].build(data_dir, spec.options))
        tally.built[spec.name] = len(raw)
        rng = random.Random(f"{mixture.seed}:{spec.name}")
        pool = _pool(spec, raw, rng, scrub=scrub, guard=guard, seen=seen, tally=tally)
        chosen += _weighted(pool, spec, rng)
    random.Random(mixture.seed).shuffle(chosen)
    _write_rows(chosen, tally.leaks, out_dir)
    removed = {
        "built": dict(tally.built),
        "examined": dict(tally.examined),
        "duplicates": dict(tally.duplicates),
        "leakage": dict(Counter(f"{leak.source}/{leak.task} ~ {leak.eval_task}"
                                for leak in tally.leaks)),
        "leakage_config": mixture.leakage.__dict__,
        "eval_items_indexed": len(guard.items),
        "eval_template_ngrams": guard.template_grams,
        "phi_redaction_failed": scrub.failed,
    }
    phi = {"examples_changed": scrub.examples_changed, **dict(scrub.placeholders)}
    sheet = datasheet(chosen, mixture=mixture.path, seed=mixture.seed, inputs=inputs,
                      data_dir=data_dir, removed=removed, phi=phi)
    write_datasheet(sheet, out_dir)
    metrics = {"examples": len(chosen), "examined": sum(tally.examined.values()),
               "duplicates": sum(tally.duplicates.values()), "leakage": len(tally.leaks),
               "build_seconds": round(time.monotonic() - started, 1)}
    (out_dir / METRICS_FILE).write_text(json.dumps({"metrics": metrics}, indent=2))
    return sheet
