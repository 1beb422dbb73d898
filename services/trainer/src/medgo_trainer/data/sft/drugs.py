"""Drug labels → question/answer pairs whose answers are the label's own text.

Only QiZhenGPT's 94-drug indication file is staged (MANIFEST.md), so today only the
indication templates fire; a label file with the other columns (禁忌, 不良反应,
用法用量, 药物相互作用) gets their templates too. No template states anything the
label does not: each answer quotes a field, or lists the expert-annotated terms.
The optional paraphrase pass rewrites only the *question* through an LLM, so a
model can vary the wording but never the facts.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, chat
from medgo_trainer.data.sft.llm import Endpoint, complete
from medgo_trainer.data.sft.sourcefiles import SourceFile

NAME = "drugs"
FILES = (
    SourceFile("corpus/qizhengpt/drug_indication_eval.csv", "csv", ("药品", "药品适应症")),
)
OPTIONS = frozenset({"paraphrase", "endpoint", "model", "api_key"})

# Label column -> (task name, question templates); {drug} is the drug's name.
FIELD_TEMPLATES: dict[str, tuple[str, tuple[str, ...]]] = {
    "药品适应症": ("drug-indications", ("{drug}的适应症是什么？", "{drug}用于治疗哪些情况？")),
    "禁忌": ("drug-contraindications", ("{drug}有哪些禁忌？", "哪些人不能使用{drug}？")),
    "不良反应": ("drug-adverse-reactions", ("{drug}有哪些不良反应？",)),
    "用法用量": ("drug-dosage", ("{drug}的用法用量是什么？",)),
    "药物相互作用": ("drug-interactions", ("{drug}与其他药物有哪些相互作用？",)),
}
EXPERT_FIELD = "医学专家标注的适应病症"
_TAG = re.compile(r"<[^>]+>")


def label_text(raw: str) -> str:
    """Label HTML (``<p>…</p>``) to plain text."""
    return re.sub(r"\s+", " ", _TAG.sub("", raw)).strip()


def _label_examples(row: dict[str, str]) -> Iterator[SftExample]:
    drug = row["药品"].strip()
    for column, (task, questions) in FIELD_TEMPLATES.items():
        text = label_text(row.get(column) or "")
        if not text:
            continue
        for question in questions:
            answer = f"根据{drug}的药品说明书：{text}"
            yield SftExample(chat(question.format(drug=drug), answer), NAME, task, True)
    terms = [t.strip() for t in (row.get(EXPERT_FIELD) or "").split("|") if t.strip()]
    if terms:
        answer = f"{drug}说明书所列的适应病症包括：{'、'.join(terms)}。"
        yield SftExample(chat(f"{drug}的适应病症有哪些？", answer), NAME, "drug-indication-list",
                         True)


def paraphrase(example: SftExample, endpoint: Endpoint) -> SftExample:
    """The same example with its question reworded by the model (answer untouched)."""
    question = example.messages[0]["content"]
    prompt = ("请换一种说法改写下面这个问题，意思不变，只输出改写后的问题：\n" + question)
    reworded = complete(endpoint, [{"role": "user", "content": prompt}], max_tokens=64).strip()
    if not reworded:
        return example
    messages = [{"role": "user", "content": reworded}, example.messages[1]]
    return SftExample(messages, example.source, example.task, True, {"paraphrased": "1"})


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    """Template QA for every drug; reworded by ``options['endpoint']`` if ``paraphrase``."""
    endpoint = Endpoint.from_options(options) if options.get("paraphrase") else None
    with FILES[0].resolve(data_dir).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            for example in _label_examples(row):
                yield paraphrase(example, endpoint) if endpoint else example
