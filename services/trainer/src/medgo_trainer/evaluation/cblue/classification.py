"""The CBLUE classification tasks: one label per example, chosen from a fixed set.

CHIP-CTC and CHIP-STS are scored by macro-F1, KUAKE-QIC/QTR/QQR by accuracy, as
each task's README states. The prompt lists the labels in words; the parser takes
the label named earliest in the reply (the longest name when several start there,
so "部分相关" is not read as "相关"). A bare label code is accepted only as the
whole reply, since digits also occur inside sentences.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medgo_trainer.evaluation.tasks import (
    Example,
    Reply,
    Scored,
    Task,
    check_fields,
    read_records,
)


def pick_label(output: str, names: dict[str, str]) -> str | None:
    """The label (key of ``names``: label -> surface word) named first in ``output``."""
    text = output.strip()
    if text in names:
        return text
    best: tuple[int, int, str] | None = None
    for label, word in names.items():
        at = text.find(word)
        if at >= 0 and (best is None or (at, -len(word)) < (best[0], -best[1])):
            best = (at, len(word), label)
    return best[2] if best else None


class LabelTask(Task):
    """A single-label task; subclasses give the label words and the input fields."""

    labels: dict[str, str]  # gold label -> the word the model is asked to answer with
    question: str
    max_tokens = 16

    def prompt(self, example: Example) -> str:
        options = "、".join(self.labels.values())
        return f"{self.question}\n{self.render_input(example.data)}\n只能回答以下之一：{options}。"

    def render_input(self, record: dict[str, Any]) -> str:
        raise NotImplementedError

    def answer(self, example: Example) -> str:
        return self.labels[example.data["label"]]

    def score(self, example: Example, reply: Reply) -> Scored:
        predicted = pick_label(reply.text, self.labels)
        gold = example.data["label"]
        unit: Any = [gold, predicted] if self.kind == "macro_f1" else float(predicted == gold)
        return Scored(unit, predicted)


class ChipCTC(LabelTask):
    name = "chip-ctc"
    title = "CHIP-CTC"
    metric = "Macro-F1"
    kind = "macro_f1"
    max_tokens = 24
    eval_file = "cblue/CHIP-CTC/CHIP-CTC_dev.json"
    train_file = "cblue/CHIP-CTC/CHIP-CTC_train.json"
    required = ("text", "label")
    category_file = "cblue/CHIP-CTC/category.json"
    question = "判断下面这条临床试验筛选标准属于哪一类。"

    def __init__(self) -> None:
        self.labels = {}

    def load(self, data_dir: Path) -> list[Example]:
        """The 44 categories come with Chinese names in the release's category file."""
        path = data_dir / self.category_file
        categories = read_records(path)
        check_fields(categories, ("Label Name", "Chinese Label Name"), path)
        self.labels = {c["Label Name"]: c["Chinese Label Name"] for c in categories}
        return super().load(data_dir)

    def render_input(self, record: dict[str, Any]) -> str:
        return f"筛选标准：{record['text'].strip()}"


class ChipSTS(LabelTask):
    name = "chip-sts"
    title = "CHIP-STS"
    metric = "Macro-F1"
    kind = "macro_f1"
    eval_file = "cblue/CHIP-STS/CHIP-STS_dev.json"
    train_file = "cblue/CHIP-STS/CHIP-STS_train.json"
    required = ("text1", "text2", "label")
    labels = {"1": "语义相同", "0": "语义不同"}  # noqa: RUF012 - class-level constant
    question = "判断下面两个医疗问句的语义是否相同。"

    def render_input(self, record: dict[str, Any]) -> str:
        return f"问句一：{record['text1']}\n问句二：{record['text2']}"


class KuakeQIC(LabelTask):
    name = "kuake-qic"
    title = "KUAKE-QIC"
    metric = "Accuracy"
    kind = "accuracy"
    eval_file = "cblue/KUAKE-QIC/KUAKE-QIC_dev.json"
    train_file = "cblue/KUAKE-QIC/KUAKE-QIC_train.json"
    required = ("query", "label")
    labels = {  # noqa: RUF012 - class-level constant
        name: name
        for name in (
            "病情诊断", "病因分析", "治疗方案", "就医建议", "指标解读", "疾病表述",
            "后果表述", "注意事项", "功效作用", "医疗费用", "其他",
        )
    }  # fmt: skip
    question = "判断下面这条医疗搜索词的意图类别。"

    def render_input(self, record: dict[str, Any]) -> str:
        return f"搜索词：{record['query']}"


class KuakeQTR(LabelTask):
    name = "kuake-qtr"
    title = "KUAKE-QTR"
    metric = "Accuracy"
    kind = "accuracy"
    eval_file = "cblue/KUAKE-QTR/KUAKE-QTR_dev.json"
    train_file = "cblue/KUAKE-QTR/KUAKE-QTR_train.json"
    required = ("query", "title", "label")
    labels = {"3": "完全匹配", "2": "部分匹配", "1": "少量匹配", "0": "不匹配"}  # noqa: RUF012
    question = "判断搜索词与页面标题的主题匹配程度。"

    def render_input(self, record: dict[str, Any]) -> str:
        return f"搜索词：{record['query']}\n标题：{record['title']}"


class KuakeQQR(LabelTask):
    name = "kuake-qqr"
    title = "KUAKE-QQR"
    metric = "Accuracy"
    kind = "accuracy"
    eval_file = "cblue/KUAKE-QQR/KUAKE-QQR_dev.json"
    train_file = "cblue/KUAKE-QQR/KUAKE-QQR_train.json"
    required = ("query1", "query2", "label")
    labels = {"2": "语义完全相同", "1": "后者是前者的子集", "0": "语义不同"}  # noqa: RUF012
    question = "判断两个医疗搜索词的语义关系。"

    def render_input(self, record: dict[str, Any]) -> str:
        return f"搜索词一：{record['query1']}\n搜索词二：{record['query2']}"
