"""Storage sized for the job: every overlay's model store and data claims are at least
what the model and corpus they are annotated with need (`medgo.io/model`,
`medgo.io/corpus`), by the rule below; production names its storage classes. The
arithmetic behind the figures is in docs/operations.md ("Storage").

Model store = 2 × the base weights (the serving base and the next one during a
base-model rollout) + the adapters kept (each with its run directory) + one training
resume state (a ZeRO-3 checkpoint: bf16 weights, fp32 master weights, two Adam moments).
Data = 3 × the raw corpus (raw, prepared, the datasets cache) + the tokenized corpus
(4 bytes per token).
"""

from __future__ import annotations

import copy
import json
import re

import pytest

GB = 10**9
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "K": 10**3, "M": 10**6,
         "G": 10**9, "T": 10**12}
# name → (parameters, bytes per served weight, adapters kept, bytes per adapter run)
MODELS = {
    "medgo-72b": (72.7e9, 2, 100, 4 * GB),  # Qwen2-72B bf16; r≤64 LoRA + optimizer state
    "medgo-tiny": (30e6, 4, 20, 20 * 10**6),  # float32 on CPU
}
ZERO3_BYTES_PER_PARAM = 2 + 4 + 8  # bf16 weights + fp32 master + Adam m, v
# name → (raw bytes, tokens)
CORPORA = {
    "medgo-14b-tokens": (40 * GB, 14e9),
    "bundled": (50 * 10**6, 15e6),  # ../shared/data (42 MB on disk)
}


def quantity(value: str) -> int:
    number, unit = re.fullmatch(r"(\d+(?:\.\d+)?)([KMGT]i?)?", value).groups()
    return int(float(number) * UNITS.get(unit or "", 1))


def needed_model_store(model: str) -> int:
    params, served, adapters, per_adapter = MODELS[model]
    return int(2 * params * served + adapters * per_adapter + params * ZERO3_BYTES_PER_PARAM)


def needed_data(corpus: str) -> int:
    raw, tokens = CORPORA[corpus]
    return int(3 * raw + 4 * tokens)


def storage_violations(objects: list[dict]) -> list[str]:
    out = []
    for pvc in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        name = f"PersistentVolumeClaim/{pvc['metadata']['name']}"
        notes = pvc["metadata"].get("annotations", {})
        size = quantity(pvc["spec"]["resources"]["requests"]["storage"])
        for key, rule in (("medgo.io/model", needed_model_store),
                          ("medgo.io/corpus", needed_data)):
            if key in notes:
                need = rule(notes[key])
                if size < need:
                    out.append(f"{name}: {size / GB:.0f} GB < {need / GB:.0f} GB that "
                               f"{key}={notes[key]} needs ({rule.__name__})")
    return out


def _pvc(objects: list[dict], name: str) -> dict:
    return next(o for o in objects if o["kind"] == "PersistentVolumeClaim"
                and o["metadata"]["name"] == name)


@pytest.mark.parametrize("overlay", ["local-cpu", "prod-a100"])
def test_claims_hold_what_they_are_annotated_with(rendered: dict, overlay: str) -> None:
    objects = rendered[overlay]
    assert "medgo.io/model" in _pvc(objects, "medgo-checkpoints")["metadata"]["annotations"]
    assert "medgo.io/corpus" in _pvc(objects, "medgo-data")["metadata"]["annotations"]
    assert storage_violations(objects) == []


def test_prod_claims_the_72b_model_it_serves_with_named_classes(rendered: dict) -> None:
    objects = rendered["prod-a100"]
    model = _pvc(objects, "medgo-checkpoints")["metadata"]["annotations"]["medgo.io/model"]
    # the base inference serves is the serving manifest's (a ConfigMap followed at run time)
    manifest = next(o for o in objects if o["kind"] == "ConfigMap"
                    and o["metadata"]["name"] == "serving-manifest")
    assert f"/{model}/" in json.loads(manifest["data"]["serving.json"])["base_model"]
    for pvc in (o for o in objects if o["kind"] == "PersistentVolumeClaim"):
        assert pvc["spec"].get("storageClassName"), pvc["metadata"]["name"]
    assert needed_model_store("medgo-72b") >= 2 * 145 * GB  # ≥ 2 × the 72B base


def test_a_claim_below_its_model_is_named(rendered: dict) -> None:
    objects = copy.deepcopy(rendered["prod-a100"])
    _pvc(objects, "medgo-checkpoints")["spec"]["resources"]["requests"]["storage"] = "20Gi"
    _pvc(objects, "medgo-data")["spec"]["resources"]["requests"]["storage"] = "20Gi"
    assert storage_violations(objects) == [
        "PersistentVolumeClaim/medgo-checkpoints: 21 GB < 1709 GB that "
        "medgo.io/model=medgo-72b needs (needed_model_store)",
        "PersistentVolumeClaim/medgo-data: 21 GB < 176 GB that "
        "medgo.io/corpus=medgo-14b-tokens needs (needed_data)",
    ]
