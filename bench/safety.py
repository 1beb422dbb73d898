"""Safety policy: refusal rate on harmful prompts, false refusals on ordinary questions.

    .venv/bin/python bench/safety.py
    .venv/bin/python bench/safety.py --data-dir ../shared/data --show 5

Sets (see docs/benchmarks.md, "Safety policy", for why these):
- labelled prompts (services/gateway/tests/data/safety_prompts.jsonl): clearly harmful
  requests per category, and clinician-style lookalikes that must be answered; each
  with a "dev" part (rules tuned on it) and a "heldout" part;
- real patient questions from the shared corpus (Huatuo-26M test questions and the
  Toyhom internal-medicine dialogues): every refusal there is a false refusal;
- CValues responsibility prompts: sensitive but legitimate questions (psychology, law,
  intimacy...) that deserve a careful answer, not a refusal;
- SafetyBench (zh subset) questions: multiple-choice questions *about* safety, read as
  prompts; they ask for judgement, not help, so refusing them is a false refusal too.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from medgo_common.paths import default_data_dir, repo_root
from medgo_common.schemas.openai import ChatMessage
from medgo_gateway.policy.safety import SafetyPolicy

LABELLED = repo_root() / "services/gateway/tests/data/safety_prompts.jsonl"


def _benign_sets(data_dir: Path) -> dict[str, list[str]]:
    huatuo = json.loads((data_dir / "corpus/zhongjing/huatuo26M_test_first3000.json").read_text())
    toyhom = data_dir / "corpus/toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv"
    with toyhom.open(encoding="utf-8") as fh:
        dialogues = [f"{row['title']}\n{row['ask']}" for row in csv.DictReader(fh)]
    cvalues = data_dir / "safety/cvalues/cvalues_responsibility_prompts.jsonl"
    safetybench = data_dir / "safety/safetybench/test_zh_subset.json"
    return {
        "Huatuo-26M patient questions": [r["instruction"][0] for r in huatuo],
        "Toyhom internal-medicine questions": dialogues,
        "CValues responsibility prompts": [
            json.loads(line)["prompt"] for line in cvalues.open(encoding="utf-8")
        ],
        "SafetyBench zh questions": [q["question"] for q in json.loads(safetybench.read_text())],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=default_data_dir())
    parser.add_argument("--show", type=int, default=3, help="refused benign prompts to print")
    args = parser.parse_args()
    policy = SafetyPolicy()

    def refused(prompt: str) -> str | None:
        decision = policy.check([ChatMessage(role="user", content=prompt)])
        return decision.category if decision else None

    rows = [json.loads(line) for line in LABELLED.open(encoding="utf-8")]
    print("| set | prompts | refused | rate | category right |")
    print("|---|---|---|---|---|")
    for split in ("dev", "heldout"):
        for harmful in (True, False):
            part = [r for r in rows if r["split"] == split and r["harmful"] is harmful]
            got = [refused(r["prompt"]) for r in part]
            hits = sum(g is not None for g in got)
            right = sum(g == r["category"] for g, r in zip(got, part, strict=True) if g)
            label = "harmful" if harmful else "clinical lookalikes"
            print(f"| labelled {label} ({split}) | {len(part)} | {hits} | {hits / len(part):.1%} "
                  f"| {right}/{hits} |")
    examples: list[str] = []
    total, seconds = 0, 0.0
    for name, prompts in _benign_sets(args.data_dir).items():
        start = time.perf_counter()
        got = [(refused(p), p) for p in prompts]
        seconds += time.perf_counter() - start
        total += len(prompts)
        hits = [(c, p) for c, p in got if c]
        print(f"| {name} | {len(prompts)} | {len(hits)} | {len(hits) / len(prompts):.2%} | - |")
        examples += [f"{c}: {p[:80]!r}" for c, p in hits[: args.show]]
    print(f"\nthroughput: {total / seconds:,.0f} checks/s ({total} prompts, one core)")
    if examples:
        print("\nrefused benign prompts (first few per set):")
        for line in examples:
            print(" ", line)


if __name__ == "__main__":
    main()
