"""CHIP-CDEE: clinical discovery event extraction, micro-F1 on event quadruples.

An event is (core term, tendency, characters, anatomy): tendency is "" (happened),
"否定" or "不确定"; characters and anatomy are sets of words, so their order does not
matter. An event counts only when all four parts match exactly; duplicates count once.
No CHIP-CDEE data is shipped (see MANIFEST.md); the task runs once
``cblue/CHIP-CDEE/CHIP-CDEE_dev.json`` is placed under the data directory.
"""

from __future__ import annotations

from medgo_trainer.evaluation.cblue.lines import answer_lines, fields
from medgo_trainer.evaluation.metrics import set_unit
from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

Event = tuple[str, str, tuple[str, ...], tuple[str, ...]]
TENDENCIES = {"": "", "发生": "", "肯定": "", "否定": "否定", "不确定": "不确定"}


def _word_set(field: str) -> tuple[str, ...]:
    words = (w.strip() for w in field.replace("，", ",").replace("、", ",").split(","))
    return tuple(sorted({w for w in words if w and w != "无"}))


def make_event(core: str, tendency: str, characters: list[str], anatomy: list[str]) -> Event:
    return (core, tendency, tuple(sorted(set(characters))), tuple(sorted(set(anatomy))))


def parse_events(output: str, source: str | None = None) -> set[Event]:
    """``主体词|发生状态|描述词,…|解剖部位,…`` lines (``无`` for an empty part)."""
    found = set()
    for line in answer_lines(output, source):
        parts = fields(line, 4)
        if parts is None or parts[1] not in TENDENCIES:
            continue
        found.add((parts[0], TENDENCIES[parts[1]], _word_set(parts[2]), _word_set(parts[3])))
    return found


def gold_events(example: Example) -> set[Event]:
    return {
        make_event(e["core_name"], e.get("tendency", ""), e["character"], e["anatomy_list"])
        for e in example.data["event"]
    }


class ChipCDEE(Task):
    name = "chip-cdee"
    title = "CHIP-CDEE"
    metric = "Micro-F1"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/CHIP-CDEE/CHIP-CDEE_dev.json"
    train_file = "cblue/CHIP-CDEE/CHIP-CDEE_train.json"
    required = ("text", "event")

    def prompt(self, example: Example) -> str:
        return (
            "从下面的临床文本中抽取临床发现事件。每行输出一个"
            "“主体词|发生状态|描述词|解剖部位”，发生状态为发生、否定或不确定，"
            "多个描述词或解剖部位用逗号分隔，缺少的部分写“无”；没有事件时输出“无”。\n"
            f"文本：{example.data['text']}"
        )

    def answer(self, example: Example) -> str:
        lines = [
            "|".join((core, tendency or "发生", ",".join(chars) or "无", ",".join(anat) or "无"))
            for core, tendency, chars, anat in sorted(gold_events(example))
        ]
        return "\n".join(lines) or "无"

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_events(reply.text, example.data["text"])
        return Scored(
            set_unit(predicted, gold_events(example)), [list(e) for e in sorted(predicted)]
        )
