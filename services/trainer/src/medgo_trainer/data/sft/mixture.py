"""The mixture recipe (YAML): which sources, their weights and caps, the seed.

    seed: 1234
    leakage: {ngram: 8, threshold: 0.5, min_chars: 12, template_df: 5}   # optional
    sources:
      - {name: drugs, weight: 2.0, max_examples: 1000}
      - {name: dialogues, weight: 1.0, options: {files: [toyhom_medical_dialogue/...]}}

``weight`` multiplies a source's capped pool (0.5 keeps half, 2.0 repeats it twice),
the way LLaMA-Factory-style mixtures up- and down-sample; ``max_examples`` caps the
pool before weighting. Overrides use the training recipes' ``key.sub=value`` syntax,
with a source addressed by name: ``seed=7``, ``leakage.threshold=0.6``,
``sources.cblue.max_examples=500``, or a whole new list ``sources=[{name: drugs}]``.
`load_mixture` rejects every mistake it can see (unknown key or source name, weight
≤ 0, duplicate source, an override naming no source) and `validate_sources` then
checks each source's files, all before `build` writes a byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml
from medgo_trainer.configfile import apply_override, resolve_packaged, yaml_error_where
from medgo_trainer.data.sft.builders import BUILDERS
from medgo_trainer.data.sft.example import SourceError
from medgo_trainer.data.sft.leakage import LeakageConfig

#: The mixtures shipped with the package (`sft-mixture-default`).
MIXTURES_DIR = Path(__file__).resolve().parent / "mixtures"
DEFAULT_MIXTURE = MIXTURES_DIR / "sft-mixture-default.yaml"


@dataclass(frozen=True)
class SourceSpec:
    name: str
    weight: float = 1.0
    max_examples: int | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Mixture:
    sources: tuple[SourceSpec, ...]
    seed: int = 1234
    leakage: LeakageConfig = field(default_factory=LeakageConfig)
    path: str = ""


def _unknown(where: str, given: dict, allowed: set[str]) -> None:
    extra = sorted(set(given) - allowed)
    if extra:
        raise SourceError(f"{where}: unknown key(s) {extra}; allowed: {sorted(allowed)}")


def _source(raw: object, index: int) -> SourceSpec:
    if not isinstance(raw, dict) or "name" not in raw:
        raise SourceError(f"sources[{index}] must be a mapping with a `name`")
    name = raw["name"]
    where = f"sources[{index}] ({name})"
    _unknown(where, raw, {f.name for f in fields(SourceSpec)})
    if name not in BUILDERS:
        raise SourceError(f"{where}: unknown source name; known: {sorted(BUILDERS)}")
    weight = raw.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, int | float) or weight <= 0:
        raise SourceError(f"{where}: weight must be a number > 0, got {weight!r}")
    cap = raw.get("max_examples")
    if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
        raise SourceError(f"{where}: max_examples must be a whole number ≥ 1, got {cap!r}")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise SourceError(f"{where}: options must be a mapping")
    _unknown(f"{where} options", options, set(BUILDERS[name].options))
    return SourceSpec(name, float(weight), cap, options)


def parse_mixture(raw: object, path: str = "") -> Mixture:
    """A validated `Mixture` from the parsed YAML document."""
    if not isinstance(raw, dict):
        raise SourceError(f"mixture {path}: expected a mapping at the top level")
    _unknown(f"mixture {path}", raw, {"seed", "leakage", "sources"})
    sources = raw.get("sources")
    if not isinstance(sources, list) or not sources:
        raise SourceError(f"mixture {path}: `sources` must be a non-empty list")
    specs = tuple(_source(s, i) for i, s in enumerate(sources))
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise SourceError(f"mixture {path}: a source is listed twice: {names}")
    seed = raw.get("seed", 1234)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SourceError(f"mixture {path}: seed must be an integer, got {seed!r}")
    leakage = raw.get("leakage") or {}
    if not isinstance(leakage, dict):
        raise SourceError(f"mixture {path}: leakage must be a mapping")
    _unknown(f"mixture {path} leakage", leakage, {f.name for f in fields(LeakageConfig)})
    return Mixture(specs, seed, LeakageConfig(**leakage), path)


def _override(raw: dict[str, Any], item: str) -> None:
    """One ``key.sub=value`` override; ``sources.<name>.<key>`` edits the named source."""
    key, sep, value = item.partition("=")
    parts = key.strip().split(".")
    sources = raw.get("sources")
    if not (sep and parts[0] == "sources" and len(parts) > 2 and isinstance(sources, list)):
        apply_override(raw, item, SourceError)
        return
    named = [s for s in sources if isinstance(s, dict) and s.get("name") == parts[1]]
    if not named:
        raise SourceError(f"override {item!r}: the mixture has no source {parts[1]!r}")
    apply_override(named[0], f"{'.'.join(parts[2:])}={value}", SourceError)


def resolve_mixture_path(name: str | Path) -> Path:
    """A mixture file path as given, or a packaged mixture by name (`sft-mixture-default`)."""
    return resolve_packaged(name, MIXTURES_DIR, "mixture", SourceError)


def load_mixture(path: Path, overrides: Sequence[str] = ()) -> Mixture:
    """The recipe at ``path`` with ``overrides`` applied, validated (not its files)."""
    if not path.is_file():
        raise SourceError(f"mixture recipe {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SourceError(f"mixture recipe {path} is not valid YAML "
                          f"({yaml_error_where(exc)})") from None
    if overrides and not isinstance(raw, dict):
        raise SourceError(f"mixture {path}: expected a mapping at the top level")
    for item in overrides:
        _override(raw, item)
    return parse_mixture(raw, str(path))


def validate_sources(mixture: Mixture, data_dir: Path) -> dict[str, list[Path]]:
    """Every source's input files, each checked; the first bad one raises SourceError."""
    return {s.name: BUILDERS[s.name].validate(data_dir, s.options) for s in mixture.sources}
