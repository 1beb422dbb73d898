"""SFT data builders: examples/s for each builder and for the whole default mixture.

    .venv/bin/python bench/sft_data.py
    .venv/bin/python bench/sft_data.py --data-dir ../shared/data --repeat 3

Each builder runs over the shared data with its default options (the guidelines source
needs a reviewed queue, so it is timed on a throwaway queue of approved pairs); the
best of ``--repeat`` runs is kept. Then the leakage index is built once and the
default mixture (`recipes/sft-mixture-default.yaml`) is built end to end into a
temporary directory: PHI scrub, de-duplication, leakage check, sampling, writing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from medgo_common.paths import default_data_dir
from medgo_trainer.data.sft.build import build_mixture
from medgo_trainer.data.sft.builders import BUILDERS
from medgo_trainer.data.sft.leakage import LeakageGuard
from medgo_trainer.data.sft.mixture import DEFAULT_MIXTURE, load_mixture
from medgo_trainer.data.sft.review import Candidate, ReviewQueue

REVIEWED_PAIRS = 500


def _queue(directory: Path) -> str:
    queue = ReviewQueue(directory / "review.sqlite3", create=True)
    queue.add([Candidate(f"c{i}", f"段落{i}", f"指南问题{i}？", f"指南答案{i}。", "bench")
               for i in range(REVIEWED_PAIRS)])
    for i in range(REVIEWED_PAIRS):
        queue.decide(f"c{i}", "approve", "bench")
    return str(queue.path)


def time_builders(data_dir: Path, repeat: int, scratch: Path) -> None:
    print("| builder | examples | seconds | examples/s |\n|---|---|---|---|")
    for name, builder in BUILDERS.items():
        options = {"queue": _queue(scratch)} if name == "guidelines" else {}
        best, count = float("inf"), 0
        for _ in range(repeat):
            start = time.perf_counter()
            count = sum(1 for _ in builder.build(data_dir, options))
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {count} | {best:.2f} | {count / best:,.0f} |")


def time_mixture(data_dir: Path, scratch: Path) -> None:
    mixture = load_mixture(DEFAULT_MIXTURE)
    start = time.perf_counter()
    guard = LeakageGuard.from_eval_harness(data_dir, mixture.leakage)
    index_s = time.perf_counter() - start
    start = time.perf_counter()
    sheet = build_mixture(mixture, data_dir, scratch / "mixture", guard=guard)
    build_s = time.perf_counter() - start
    examined = sum(sheet["removed"]["examined"].values())
    print(f"\nleakage index: {len(guard.items)} evaluation items in {index_s:.1f} s")
    print(f"default mixture: {examined} examined, {sheet['examples']} written in "
          f"{build_s:.1f} s = {examined / build_s:,.0f} examined/s, "
          f"{sheet['examples'] / build_s:,.0f} written/s (index excluded)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        time_builders(args.data_dir, args.repeat, Path(scratch))
        time_mixture(args.data_dir, Path(scratch))


if __name__ == "__main__":
    main()
