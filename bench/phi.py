"""PHI redaction quality and speed: precision/recall/F1 per type, then throughput.

    .venv/bin/python bench/phi.py
    .venv/bin/python bench/phi.py --corpus libs/medgo_common/tests/data/phi_corpus.jsonl
    .venv/bin/python bench/phi.py --repeat 20

Quality is scored on the labelled corpus (overlap matching, see
`medgo_common.phi.evaluation`), for the whole corpus and for its "dev" (rules tuned
on it) and "heldout" parts. Throughput runs `redact` over the corpus `--repeat` times
and over real patient questions from the shared data (no labels, so speed only, plus
how many spans were found there), and prints sentences/s and MB/s of UTF-8 input.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from medgo_common.paths import default_data_dir, repo_root
from medgo_common.phi import redact
from medgo_common.phi.evaluation import Example, Tally, load_corpus, score

DEFAULT_CORPUS = repo_root() / "libs/medgo_common/tests/data/phi_corpus.jsonl"
PATIENT_QUESTIONS = "corpus/toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv"


def _row(name: str, tally: Tally) -> str:
    return (
        f"| {name} | {tally.support} | {tally.precision:.3f} | {tally.recall:.3f} "
        f"| {tally.f1:.3f} | {tally.fp} | {tally.fn} |"
    )


def print_quality(title: str, examples: list[Example]) -> None:
    tallies = score(examples)
    print(f"\n{title} ({len(examples)} sentences)\n")
    print("| type | gold spans | precision | recall | F1 | FP | FN |")
    print("|---|---|---|---|---|---|---|")
    for phi_type, tally in tallies.items():
        if phi_type is not None and tally.support + tally.fp:
            print(_row(phi_type.value, tally))
    print(_row("**all (micro)**", tallies[None]))


def throughput(texts: list[str], repeat: int) -> tuple[float, float, int]:
    """(sentences/s, MB/s, spans found in one pass) for `redact` over `texts`."""
    found = sum(len(redact(t).spans) for t in texts)
    size_mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    start = time.perf_counter()
    for _ in range(repeat):
        for text in texts:
            redact(text)
    elapsed = time.perf_counter() - start
    return repeat * len(texts) / elapsed, repeat * size_mb / elapsed, found


def print_speed(name: str, texts: list[str], repeat: int) -> None:
    sps, mbs, found = throughput(texts, repeat)
    print(f"| {name} | {len(texts)} | {sps:,.0f} | {mbs:.2f} | {found} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    examples = list(load_corpus(args.corpus))
    splits = [json.loads(line).get("split", "all") for line in args.corpus.open(encoding="utf-8")]
    print_quality("Whole corpus", examples)
    for split in ("dev", "heldout"):
        part = [e for e, s in zip(examples, splits, strict=True) if s == split]
        if part:
            print_quality(f"Split {split!r}", part)

    print("\nThroughput (one process, one core)\n")
    print("| input | sentences | sentences/s | MB/s | spans found |")
    print("|---|---|---|---|---|")
    texts = [e.text for e in examples]
    print_speed(f"labelled corpus ×{args.repeat}", texts, args.repeat)
    questions_file = args.data_dir / PATIENT_QUESTIONS
    if questions_file.exists():
        with questions_file.open(encoding="utf-8") as fh:
            questions = [row["ask"] for row in csv.DictReader(fh)]
        print_speed("patient questions (toyhom)", questions, 1)


if __name__ == "__main__":
    main()
