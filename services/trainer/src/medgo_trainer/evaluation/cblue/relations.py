"""CMeIE: relation triples, strict micro-F1 on (subject, predicate, object).

CMeIE's official metric counts a triple right only when subject, predicate and
object strings all match (its submission format has no offsets, so strings are what
the official scorer compares); duplicates count once.
"""

from __future__ import annotations

from pathlib import Path

from medgo_trainer.evaluation.cblue.lines import answer_lines, fields
from medgo_trainer.evaluation.metrics import set_unit
from medgo_trainer.evaluation.tasks import (
    Example,
    Reply,
    Scored,
    Task,
    check_fields,
    read_records,
)

Triple = tuple[str, str, str]


def parse_triples(output: str, source: str | None = None) -> set[Triple]:
    """``主体|关系|客体`` lines → {(subject, predicate, object)}; other lines dropped."""
    found = set()
    for line in answer_lines(output, source):
        parts = fields(line, 3)
        if parts:
            found.add((parts[0], parts[1], parts[2]))
    return found


def topic_and_text(text: str) -> tuple[str, str]:
    """CMeIE and Text2DT prefix the sentence with its topic entity: ``主题@句子``."""
    topic, sep, body = text.partition("@")
    return (topic, body) if sep else ("", text)


def render_triples(triples: set[Triple]) -> str:
    return "\n".join("|".join(t) for t in sorted(triples)) or "无"


class CMeIE(Task):
    name = "cmeie"
    title = "CMeIE"
    metric = "Micro-F1 (strict)"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/CMeIE/CMeIE_dev.json"
    schema_file = "cblue/CMeIE/53_schemas.json"
    required = ("text", "spo_list")

    def __init__(self) -> None:
        self._predicates: list[str] = []

    def load(self, data_dir: Path) -> list[Example]:
        path = data_dir / self.schema_file
        schemas = read_records(path)
        check_fields(schemas, ("predicate",), path)
        self._predicates = sorted({s["predicate"] for s in schemas})
        return super().load(data_dir)

    def prompt(self, example: Example) -> str:
        topic, body = topic_and_text(example.data["text"])
        relations = "、".join(self._predicates)
        return (
            f"从文本中抽取医学关系三元组，关系只能是：{relations}。"
            "每行输出一个“主体|关系|客体”，没有时输出“无”。\n"
            + (f"主题：{topic}\n" if topic else "")
            + f"文本：{body}"
        )

    def answer(self, example: Example) -> str:
        return render_triples(gold_spo(example))

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_triples(reply.text, example.data["text"])
        return Scored(set_unit(predicted, gold_spo(example)), sorted(predicted))


def gold_spo(example: Example) -> set[Triple]:
    return {(s["subject"], s["predicate"], s["object"]["@value"]) for s in example.data["spo_list"]}
