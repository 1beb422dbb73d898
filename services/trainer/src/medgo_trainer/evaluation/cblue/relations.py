"""Triple extraction: CMeIE (strict micro-F1 on triples) and Text2DT (triple F1).

CMeIE's official metric counts a (subject, predicate, object) triple right only when
all three match exactly; duplicates count once. Text2DT's full metric family scores
decision trees (paths, nodes, edit distance); only its triple-level F1 is computed
here, over every triple of the tree, which needs no tree decoder.
"""

from __future__ import annotations

from pathlib import Path

from medgo_trainer.evaluation.cblue.lines import answer_lines, fields
from medgo_trainer.evaluation.metrics import set_unit
from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task, read_records

Triple = tuple[str, str, str]


def parse_triples(output: str) -> set[Triple]:
    """``主体|关系|客体`` lines → {(subject, predicate, object)}; other lines dropped."""
    found = set()
    for line in answer_lines(output):
        parts = fields(line, 3)
        if parts:
            found.add((parts[0], parts[1], parts[2]))
    return found


def _topic_and_text(text: str) -> tuple[str, str]:
    """Both datasets prefix the sentence with its topic entity: ``主题@句子``."""
    topic, sep, body = text.partition("@")
    return (topic, body) if sep else ("", text)


def _triples_prompt(instruction: str, text: str) -> str:
    topic, body = _topic_and_text(text)
    return (
        f"{instruction}每行输出一个“主体|关系|客体”，没有时输出“无”。\n"
        + (f"主题：{topic}\n" if topic else "")
        + f"文本：{body}"
    )


def _render(triples: set[Triple]) -> str:
    return "\n".join("|".join(t) for t in sorted(triples)) or "无"


class CMeIE(Task):
    name = "cmeie"
    title = "CMeIE"
    metric = "Micro-F1 (strict)"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/CMeIE/CMeIE_dev.json"
    schema_file = "cblue/CMeIE/53_schemas.json"

    def __init__(self) -> None:
        self._predicates: list[str] = []

    def load(self, data_dir: Path) -> list[Example]:
        schemas = read_records(data_dir / self.schema_file)
        self._predicates = sorted({s["predicate"] for s in schemas})
        return super().load(data_dir)

    def prompt(self, example: Example) -> str:
        relations = "、".join(self._predicates)
        return _triples_prompt(
            f"从文本中抽取医学关系三元组，关系只能是：{relations}。", example.data["text"]
        )

    def answer(self, example: Example) -> str:
        return _render(gold_spo(example))

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_triples(reply.text)
        return Scored(set_unit(predicted, gold_spo(example)), sorted(predicted))


def gold_spo(example: Example) -> set[Triple]:
    return {(s["subject"], s["predicate"], s["object"]["@value"]) for s in example.data["spo_list"]}


class Text2DT(Task):
    name = "text2dt"
    title = "Text2DT"
    metric = "Triple-F1"
    kind = "micro_f1"
    max_tokens = 256
    eval_file = "cblue/Text2DT/Text2DT_test.json"
    train_file = "cblue/Text2DT/Text2DT_train.json"

    def prompt(self, example: Example) -> str:
        return _triples_prompt(
            "从诊疗文本中抽取决策相关的三元组，关系只能是："
            "临床表现、基本情况、治疗方案、治疗药物、用法用量、禁用药物。",
            example.data["text"],
        )

    def answer(self, example: Example) -> str:
        return _render(gold_tree_triples(example))

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = parse_triples(reply.text)
        return Scored(set_unit(predicted, gold_tree_triples(example)), sorted(predicted))


def gold_tree_triples(example: Example) -> set[Triple]:
    return {tuple(t) for node in example.data["tree"] for t in node["triples"]}  # type: ignore[misc]
