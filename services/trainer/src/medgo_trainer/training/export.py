"""`medgo-train export`: merge LoRA adapters into their base, as a normal model directory.

Three things need a merged model, and none of them may merge inside a ZeRO-3 job (the
weights there are empty placeholders, and PEFT's merge does not gather them):

* the LoRA pre-training output becomes the base the SFT stage starts from;
* the SFT policy merged into the base is the DPO/KTO starting point and reference
  (`reference:` in their recipes), made *before* the partitioned training process;
* base + SFT + preference adapters make a fully merged serving model, when a plain
  model is wanted instead of base + LoRA.

`--adapter` may be repeated; each is merged on top of the previous result, the order
in which they were trained. The merge runs in float32 on the CPU (a bf16 add would round
every delta) and the result is written in the base's own dtype unless `--dtype` says
otherwise. The directory also holds `export.json` (the lineage: base, adapters and their
fingerprints, which the preference stages check) and the `recipe.resolved.yaml` /
`metrics.json` pair `medgo-train registry add` reads, so `--register` records the
export in the registry with its parent (the parser is in `training/cli.py`).

    medgo-train export --base /models/Qwen2-72B --adapter /ckpt/medgo-72b-pretrain \\
        --out /models/medgo-72b-pretrain
    medgo-train export --base var/models/medgo-tiny/base \\
        --adapter var/models/medgo-tiny/adapters/sft --out var/models/medgo-tiny-sft-merged
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any

import yaml
from medgo_trainer.configfile import ConfigError

log = logging.getLogger(__name__)

EXPORT_FILE = "export.json"
ADAPTER_CONFIG = "adapter_config.json"
_ADAPTER_WEIGHTS = "adapter_model.safetensors"
_LORA = (".lora_A.weight", ".lora_B.weight")


class ExportError(ConfigError):
    """An export that cannot be made; the message names the input and the fix."""


def is_adapter(path: Path) -> bool:
    """Whether `path` is a PEFT adapter directory (a LoRA stage's output)."""
    return (path / ADAPTER_CONFIG).is_file()


def require_model(path: Path, role: str) -> None:
    """
    Refuse a PEFT adapter where a full model is needed — the LoRA pre-training output
    passed as the SFT base — naming the export that makes one.
    """
    if is_adapter(path):
        raise ExportError(
            f"{role}: {path} is a LoRA adapter (a stage's output), not a model; merge it "
            f"first: medgo-train export --base <its base> --adapter {path} --out <dir>, "
            f"then use <dir> as {role}")


def _weight_shapes(model_dir: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name → shape of a safetensors model, read from the file headers only."""
    from safetensors import safe_open

    index = model_dir / "model.safetensors.index.json"
    if index.is_file():
        files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    shapes: dict[str, tuple[int, ...]] = {}
    for name in files:
        with safe_open(str(model_dir / name), framework="pt") as fh:
            for key in fh.keys():  # noqa: SIM118 - safe_open has no __iter__
                shapes[key] = tuple(fh.get_slice(key).get_shape())
    return shapes


def check_adapter_fits(base: Path, adapter: Path, base_shapes: dict[str, tuple[int, ...]]
                       ) -> None:
    """
    Every LoRA pair of `adapter` must sit on a weight of `base` with matching sides:
    A is (r, in), B is (out, r), the base weight (out, in). Checked from file headers,
    so an adapter trained on another base fails here in a second, not mid-merge.
    """
    from safetensors import safe_open

    require_model(base, "base")
    if not is_adapter(adapter):
        raise ExportError(f"adapter: {adapter} is not a PEFT adapter (no {ADAPTER_CONFIG})")
    with safe_open(str(adapter / _ADAPTER_WEIGHTS), framework="pt") as fh:
        lora = {key: tuple(fh.get_slice(key).get_shape()) for key in fh.keys()}  # noqa: SIM118
    checked = 0
    for key, shape in lora.items():
        if not key.endswith(_LORA[0]):
            continue
        module = key.removeprefix("base_model.model.").removesuffix(_LORA[0])
        target = base_shapes.get(f"{module}.weight")
        b_shape = lora.get(f"{key.removesuffix(_LORA[0])}{_LORA[1]}")
        if target is None:
            raise ExportError(f"adapter {adapter} does not match base {base}: the base has no "
                              f"weight {module}.weight (trained on another architecture?)")
        if b_shape is None or (b_shape[0], shape[1]) != target:
            raise ExportError(
                f"adapter {adapter} does not match base {base}: {module} is {target[0]}x"
                f"{target[1]} in the base, the adapter was trained on "
                f"{(b_shape or ('?',))[0]}x{shape[1]}")
        checked += 1
    if not checked:
        raise ExportError(f"adapter: {adapter} holds no LoRA weights")


def fingerprint(path: Path) -> str:
    """
    sha256 identifying a model or adapter directory: its config and weight headers
    (names, dtypes, shapes, offsets) — cheap for 145 GB of weights — and, for an
    adapter, its weights themselves (megabytes).
    """
    digest = hashlib.sha256()
    for name in sorted(p.name for p in path.glob("*.json")):
        if name != EXPORT_FILE:
            digest.update(name.encode() + b"\0" + (path / name).read_bytes())
    for file in sorted(path.glob("*.safetensors")):
        if file.name == _ADAPTER_WEIGHTS:
            digest.update(file.read_bytes())
            continue
        with file.open("rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            digest.update(fh.read(size))
    return digest.hexdigest()


def lineage(base: str | Path, adapters: list[str | Path]) -> dict[str, Any]:
    """What `export.json` records: the base and adapters, with their fingerprints."""
    return {"base": str(Path(base).resolve()), "base_fingerprint": fingerprint(Path(base)),
            "adapters": [{"path": str(Path(a).resolve()), "fingerprint": fingerprint(Path(a))}
                         for a in adapters]}


def check_export(merged: Path, base: str, adapters: list[str]) -> None:
    """
    `merged` must be the export of exactly `base` + `adapters` (a DPO/KTO recipe's
    `reference:` against its `base:` and `adapter:`), else one clear error.
    """
    try:
        recorded = json.loads((merged / EXPORT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExportError(f"reference: {merged} is not a medgo-train export ({exc}); make it "
                          f"with medgo-train export --base {base} --adapter {' '.join(adapters)}"
                          f" --out {merged}") from exc
    wanted = lineage(base, list(adapters))
    got = {k: recorded.get(k) for k in ("base_fingerprint", "adapters")}
    if got["base_fingerprint"] != wanted["base_fingerprint"] or [
            a["fingerprint"] for a in got["adapters"] or []] != [
            a["fingerprint"] for a in wanted["adapters"]]:
        raise ExportError(f"reference: {merged} was exported from {recorded.get('base')} + "
                          f"{[a['path'] for a in recorded.get('adapters') or []]}, not from "
                          f"base {base} + adapter {', '.join(adapters)}; export again")


def export(base: Path, adapters: list[Path], out: Path, *, dtype: str | None = None,
           progress: bool = True) -> dict[str, Any]:
    """Merge `adapters` (in order) into `base`, write `out`; returns the lineage record."""
    import torch
    from peft import PeftModel
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if not adapters:
        raise ExportError("export: at least one --adapter is required")
    shapes = _weight_shapes(base) if not is_adapter(base) else {}
    for adapter in adapters:
        check_adapter_fits(base, adapter, shapes)
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"export: {out} exists and is not empty; choose a new --out")
    started = time.perf_counter()
    target = dtype or str(AutoConfig.from_pretrained(base).dtype or "float32").split(".")[-1]
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload(progressbar=progress)
    model = model.to(getattr(torch, target))
    model.save_pretrained(out)
    tokenizer_source = next((a for a in reversed(adapters) if (a / "tokenizer.json").exists()),
                            base)
    AutoTokenizer.from_pretrained(tokenizer_source).save_pretrained(out)
    seconds = time.perf_counter() - started
    record = {**lineage(base, list(adapters)), "dtype": target, "seconds": seconds}
    (out / EXPORT_FILE).write_text(json.dumps(record, indent=2))
    # What `medgo-train registry add` reads from a finished run.
    (out / "recipe.resolved.yaml").write_text(yaml.safe_dump(
        {"stage": "export", "base": record["base"],
         "adapters": [a["path"] for a in record["adapters"]], "dtype": target}))
    (out / "metrics.json").write_text(json.dumps(
        {"metrics": {"export_seconds": seconds}, "data_hash": ""}, indent=2))
    log.info("exported %s + %d adapter(s) to %s in %.1f s (%s)", base, len(adapters), out,
             seconds, target)
    return record
