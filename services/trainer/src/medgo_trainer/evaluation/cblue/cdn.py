"""CHIP-CDN: normalising a diagnosis to ICD-10 Beijing clinical v601 standard terms.

CBLUE scores micro-F1 over (original term, standard term) pairs; a record may map to
several standard terms joined by ``##``. Within one record the original term is
fixed, so the pairs are the set of standard terms; a repeated term counts once.
Terms are split on ``##`` only: 28 ICD standard terms contain "," or "、" themselves.
"""

from __future__ import annotations

from medgo_trainer.evaluation.cblue.lines import NONE_WORDS
from medgo_trainer.evaluation.metrics import set_unit
from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task


def parse_terms(output: str) -> set[str]:
    """Standard terms separated by ``##``, as the official submission format joins them."""
    terms = (t.strip() for t in output.split("##"))
    return {t for t in terms if t and t not in NONE_WORDS}


def gold_terms(example: Example) -> set[str]:
    return {t for t in example.data["normalized_result"].split("##") if t}


class ChipCDN(Task):
    name = "chip-cdn"
    title = "CHIP-CDN"
    metric = "Micro-F1"
    kind = "micro_f1"
    max_tokens = 96
    eval_file = "cblue/CHIP-CDN/CHIP-CDN_dev.json"
    train_file = "cblue/CHIP-CDN/CHIP-CDN_train.json"
    required = ("text", "normalized_result")

    def prompt(self, example: Example) -> str:
        return (
            "把下面的诊断原词标准化为《国际疾病分类 ICD-10 北京临床版 v601》中的标准词，"
            "有多个标准词时用“##”分隔，只输出标准词。\n"
            f"诊断原词：{example.data['text']}"
        )

    def answer(self, example: Example) -> str:
        return example.data["normalized_result"]

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_terms(reply.text)
        return Scored(set_unit(predicted, gold_terms(example)), sorted(predicted))
