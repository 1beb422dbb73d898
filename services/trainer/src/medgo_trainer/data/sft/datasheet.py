"""The datasheet written next to a built mixture: what is in it and where it came from.

Counts per source and task, length statistics, what de-duplication, PHI scrubbing and
the leakage guard removed, and the licence of every input file as MANIFEST.md states
it (sources marked research-only there stay research-only in the mixture).
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from medgo_trainer.data.sft.example import SftExample

_ROW = re.compile(r"^\|\s*`([^`]+)`\s*\|(?:[^|]*\|){3}\s*([^|]+?)\s*\|")


def manifest_licenses(data_dir: Path) -> dict[str, str]:
    """``relative path -> licence`` from the data directory's MANIFEST.md tables."""
    manifest = data_dir / "MANIFEST.md"
    if not manifest.is_file():
        return {}
    licenses = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        match = _ROW.match(line)
        if match:
            licenses[match[1]] = match[2]
    return licenses


def _lengths(values: list[int]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {"min": ordered[0], "median": statistics.median(ordered), "mean":
            round(statistics.fmean(ordered), 1), "p95": ordered[int(0.95 * (len(ordered) - 1))],
            "max": ordered[-1]}


def datasheet(examples: list[SftExample], *, mixture: str, seed: int,
              inputs: dict[str, list[Path]], data_dir: Path, removed: dict[str, Any],
              phi: dict[str, int]) -> dict[str, Any]:
    """The datasheet as a JSON-able dict."""
    licenses = manifest_licenses(data_dir)

    def licence(path: Path) -> str:
        try:
            return licenses.get(path.resolve().relative_to(data_dir.resolve()).as_posix(),
                                "not in MANIFEST.md")
        except ValueError:
            return "local file (not in MANIFEST.md)"

    per_task = Counter(f"{e.source}/{e.task}" for e in examples)
    return {
        "mixture": mixture,
        "seed": seed,
        "examples": len(examples),
        "synthetic": sum(e.synthetic for e in examples),
        "per_source": dict(sorted(Counter(e.source for e in examples).items())),
        "per_task": dict(sorted(per_task.items())),
        "chars": {"user": _lengths([len(e.user_text()) for e in examples]),
                  "assistant": _lengths([len(e.text()) - len(e.user_text()) for e in examples]),
                  "turns": _lengths([len(e.messages) for e in examples])},
        "removed": removed,
        "phi_scrub": phi,
        "sources": {name: [{"file": str(p), "license": licence(p)} for p in paths]
                    for name, paths in inputs.items()},
    }


def write_datasheet(sheet: dict[str, Any], out_dir: Path) -> None:
    """``datasheet.json`` (machine-readable) and ``DATASHEET.md`` (for people)."""
    (out_dir / "datasheet.json").write_text(json.dumps(sheet, ensure_ascii=False, indent=2),
                                            encoding="utf-8")
    lines = [f"# SFT mixture datasheet\n\nRecipe `{sheet['mixture']}`, seed {sheet['seed']}: "
             f"**{sheet['examples']}** examples ({sheet['synthetic']} synthetic).\n",
             "| source/task | examples |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in sheet["per_task"].items()]
    lines += ["", "## Removed", "", "```json", json.dumps(sheet["removed"], ensure_ascii=False,
                                                          indent=2), "```", "",
              "## PHI scrub", "", "```json", json.dumps(sheet["phi_scrub"], ensure_ascii=False),
              "```", "", "## Sources and licences", ""]
    for name, files in sheet["sources"].items():
        lines += [f"- **{name}**: `{f['file']}` — {f['license']}" for f in files]
    (out_dir / "DATASHEET.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
