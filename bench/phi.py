"""PHI redaction quality and speed: precision/recall/F1 per type, then throughput.

    .venv/bin/python bench/phi.py
    .venv/bin/python bench/phi.py --corpus libs/medgo_common/tests/data/phi_corpus.jsonl
    .venv/bin/python bench/phi.py --repeat 20

Quality is scored on the labelled corpus (overlap matching, see
`medgo_common.phi.evaluation`), for the whole corpus and for its "dev" (rules tuned
on it) and "heldout" parts; then on the second set (`phi_synth.jsonl`, real sentences
with synthetic PHI, built by bench/phi_synth.py) per context (prose, cue, record), with
the strict leak count (a grouped number redacted in part leaks); then the false
alterations on the 13,408 real questions (spans not in the reviewed list of real names,
`phi_real_names.txt`). Throughput runs `redact` over the corpus `--repeat` times and over
real patient questions, and prints sentences/s and MB/s of UTF-8 input; the worst case
is the slowest of a fixed set of adversarial inputs, in CPU ms per 1,000 characters.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from medgo_common.paths import default_data_dir, repo_root
from medgo_common.phi import redact
from medgo_common.phi.evaluation import (
    Example,
    Tally,
    false_alterations,
    leaks,
    load_corpus,
    load_names,
    real_questions,
    score,
)

DATA = repo_root() / "libs/medgo_common/tests/data"
DEFAULT_CORPUS = DATA / "phi_corpus.jsonl"
SYNTH = DATA / "phi_synth.jsonl"
REAL_NAMES = DATA / "phi_real_names.txt"
ADVERSARIAL = {
    "省 ×20,000": "省" * 20_000,
    "city/district names": "北京市朝阳区海淀区上海市浦东新区" * 1_250,
    "spaces": " " * 20_000,
    "phone label + spaces": "电话" + " " * 20_000,
    "1床 ×10,000": "1床" * 10_000,
    "digits": "1" * 20_000,
    "surnames": "王李张刘陈杨黄赵吴周" * 2_000,
    "姓名： ×6,000": "姓名：" * 6_000,
    "surname + comma": "王李，" * 6_000,
    "患者张三，男，": "患者张三，男，" * 3_000,
    # cue word + ambiguous surname / 可: every few characters a dictionary-checked name
    "患儿万秋和": "患儿万秋和" * 4_000,
    "我叫刘可": "我叫刘可" * 5_000,
}
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


def print_synth(examples: list[Example]) -> None:
    for context in ("prose", "cue", "record", "clean"):
        part = [e for e in examples if e.context == context]
        if part:
            print_quality(f"Second set, context {context!r}", part)
    print("\nStrict leaks (a character of the gold span left in clear)\n")
    print("| type | gold spans | leaked |")
    print("|---|---|---|")
    for phi_type, (total, leaked) in sorted(leaks(examples).items()):
        print(f"| {phi_type.value} | {total} | {leaked} |")


def print_real(data_dir: Path) -> None:
    questions = real_questions(data_dir)
    false = false_alterations(questions, load_names(REAL_NAMES))
    print(f"\nReal questions falsely altered: {len(false)} / {len(questions)} "
          f"({len(false) / len(questions):.3%})")
    for question, span in false:
        print(f"  {span!r} in {question[:40]!r}")


def worst_case() -> None:
    redact("患者张伟，北京市朝阳区建国路88号")  # loads data files and the name model
    print("\nWorst case (CPU ms per 1,000 characters, best of 3)\n")
    print("| input | characters | ms / 1,000 chars |")
    print("|---|---|---|")
    for name, text in ADVERSARIAL.items():
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            redact(text)
            best = min(best, time.process_time() - start)
        print(f"| {name} | {len(text):,} | {best * 1e6 / len(text):.2f} |")


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

    if SYNTH.exists():
        print_synth(list(load_corpus(SYNTH)))
    if (args.data_dir / "corpus").exists():
        print_real(args.data_dir)
    worst_case()

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
