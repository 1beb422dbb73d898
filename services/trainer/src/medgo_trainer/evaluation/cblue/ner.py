"""CMeEE: medical named-entity recognition, strict micro-F1 on (span, type).

CBLUE's scorer counts an entity right only when span and type both match exactly.
A generative model writes entity text, not offsets, so a span is identified by its
text within its sentence (as PromptCBLUE does); gold entities are deduplicated the
same way, and a repeated prediction counts once.
"""

from __future__ import annotations

from medgo_trainer.evaluation.cblue.lines import answer_lines, split_pair
from medgo_trainer.evaluation.metrics import set_unit
from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

# CMeEE's nine types: code -> the Chinese name the prompt uses.
ENTITY_TYPES = {
    "dis": "疾病",
    "sym": "临床表现",
    "pro": "医疗程序",
    "equ": "医疗设备",
    "dru": "药物",
    "ite": "医学检验项目",
    "bod": "身体",
    "dep": "科室",
    "mic": "微生物类",
}
_TYPE_BY_NAME = {**{v: k for k, v in ENTITY_TYPES.items()}, **{k: k for k in ENTITY_TYPES}}


def parse_entities(output: str) -> set[tuple[str, str]]:
    """``实体：类型`` lines → {(entity, type code)}; unknown types are dropped."""
    found = set()
    for line in answer_lines(output):
        pair = split_pair(line)
        if pair and pair[1] in _TYPE_BY_NAME:
            found.add((pair[0], _TYPE_BY_NAME[pair[1]]))
    return found


def gold_entities(example: Example) -> set[tuple[str, str]]:
    return {(e["entity"], e["type"]) for e in example.data["entities"]}


class CMeEE(Task):
    name = "cmeee"
    title = "CMeEE"
    metric = "Micro-F1 (strict)"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/CMeEE/CMeEE_dev.json"

    def prompt(self, example: Example) -> str:
        types = "、".join(ENTITY_TYPES.values())
        return (
            f"找出下面句子中的医学实体并标注类型，类型只能是：{types}。"
            "每行输出一个“实体：类型”，没有实体时输出“无”。\n"
            f"句子：{example.data['text']}"
        )

    def answer(self, example: Example) -> str:
        lines = [f"{e}：{ENTITY_TYPES[t]}" for e, t in sorted(gold_entities(example))]
        return "\n".join(lines) or "无"

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_entities(reply.text)
        return Scored(set_unit(predicted, gold_entities(example)), sorted(predicted))
