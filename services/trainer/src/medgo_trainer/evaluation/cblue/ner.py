"""CMeEE: medical named-entity recognition, strict micro-F1 on (start, end, type).

CBLUE's scorer counts an entity right only when its start and end offsets and its
type all match. A generative model writes entity text, not offsets, so the harness
places each mention: the k-th line naming a string is its k-th occurrence in the
sentence, and a line may name the occurrence itself, "肺（第2处）：身体", where the
annotators skipped an earlier one. Repeated mentions are distinct entities (1,483 of
the 20,300 dev entities are repeats); a mention the sentence does not contain is a
false positive. The gold answer is written the same way, so it scores exactly 100.
"""

from __future__ import annotations

import re
from collections import Counter

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
_OCCURRENCE = re.compile(r"^(.+?)\s*[（(]第\s*(\d+)\s*处[）)]$")

Span = tuple[int, int, str]  # (start, end inclusive, type), as CBLUE's files give it


def occurrences(text: str, mention: str) -> list[int]:
    """Start offsets of every occurrence of ``mention`` (overlapping ones included)."""
    starts, at = [], text.find(mention)
    while at >= 0 and mention:
        starts.append(at)
        at = text.find(mention, at + 1)
    return starts


def parse_spans(output: str, text: str) -> set[Span | tuple[str, str, int]]:
    """``实体：类型`` lines → spans in ``text``; unknown types are dropped, and a mention
    that cannot be placed stays as a unique unplaceable item (a false positive)."""
    found: set[Span | tuple[str, str, int]] = set()
    seen: Counter[str] = Counter()
    for i, line in enumerate(answer_lines(output, text)):
        pair = split_pair(line)
        if pair is None or pair[1] not in _TYPE_BY_NAME:
            continue
        mention, kind = pair[0], _TYPE_BY_NAME[pair[1]]
        explicit = _OCCURRENCE.match(mention)
        if explicit and explicit.group(1) in text:
            mention, nth = explicit.group(1), int(explicit.group(2)) - 1
        else:
            nth = seen[mention]
        seen[mention] += 1
        starts = occurrences(text, mention)
        if 0 <= nth < len(starts):
            found.add((starts[nth], starts[nth] + len(mention) - 1, kind))
        else:
            found.add(("unplaceable", mention, i))
    return found


def gold_spans(example: Example) -> set[Span]:
    return {(e["start_idx"], e["end_idx"], e["type"]) for e in example.data["entities"]}


def render_spans(example: Example) -> str:
    """The gold entities as answer lines, naming the occurrence only where the k-th
    mention rule would place it elsewhere."""
    text, seen, lines = example.data["text"], Counter(), []
    for e in sorted(example.data["entities"], key=lambda e: (e["start_idx"], e["end_idx"])):
        mention = e["entity"]
        nth = occurrences(text, mention).index(e["start_idx"])
        label = mention if nth == seen[mention] else f"{mention}（第{nth + 1}处）"
        seen[mention] += 1
        lines.append(f"{label}：{ENTITY_TYPES[e['type']]}")
    return "\n".join(lines) or "无"


class CMeEE(Task):
    name = "cmeee"
    title = "CMeEE"
    metric = "Micro-F1 (strict)"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/CMeEE/CMeEE_dev.json"
    required = ("text", "entities")

    def prompt(self, example: Example) -> str:
        types = "、".join(ENTITY_TYPES.values())
        return (
            f"找出下面句子中的医学实体并标注类型，类型只能是：{types}。"
            "按在句中出现的顺序每行输出一个“实体：类型”，同一实体每出现一次写一行；"
            "跳过的出现不写，其后的出现写成“实体（第n处）：类型”。没有实体时输出“无”。\n"
            f"句子：{example.data['text']}"
        )

    def answer(self, example: Example) -> str:
        return render_spans(example)

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_spans(reply.text, example.data["text"])
        shown = sorted(([*p] for p in predicted), key=str)
        return Scored(set_unit(predicted, gold_spans(example)), shown)
