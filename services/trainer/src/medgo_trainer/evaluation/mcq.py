"""Multiple choice: ClinicalQA's format (question + options → letter) and the exam sets.

Each dataset is normalised to ``{"question", "options": {letter: text}, "answer":
"B" or "ABD"}``. An item is right only when the extracted letter set equals the gold
set, so multi-answer items (CMExam has 210) need every letter. Two scoring modes:

- ``generate``: the model answers in text; `extract_letters` reads the choice.
- ``logprob``: one token is generated with its top log-probabilities and the option
  letter with the highest one wins (log-likelihood scoring, as lm-eval-harness does
  for multiple choice); when no letter is among the top tokens the generated text is
  read instead. It picks a single letter, so multi-answer items count wrong.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Literal

from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

Scoring = Literal["generate", "logprob"]
SCORINGS: tuple[Scoring, ...] = ("generate", "logprob")
TOP_LOGPROBS = 20

_GROUP = r"([A-E](?:[、,，\s和与及]*[A-E])*)(?![A-Za-z项])"
_WHOLE = re.compile(r"^[(（\[]?" + _GROUP + r"[)）\]]?[.。]?$")
_CUE = re.compile(
    r"(?:正确答案|答案|应选|选择|选项|选)\s*(?:是|为|应该是|应为)?\s*[:：]?\s*[(（\[]?" + _GROUP
)
_LEADING = re.compile(r"^[(（\[]?([A-E])(?:[)）\].．、:：\s]|$)")


def _letters(group: str, options: dict[str, str]) -> frozenset[str] | None:
    letters = frozenset(ch for ch in group if ch in options)
    return letters or None


def extract_letters(output: str, options: dict[str, str]) -> frozenset[str] | None:
    """The chosen option letters in a free-text answer, or None when no choice is found.

    Tried in order: the whole reply is letters ("B", "(C)", "ABD"); an answer cue
    ("答案：B", "选B", "正确答案是 A、C"); a leading letter ("B. 出血部位"); the text of
    exactly one option. Full-width letters count as ASCII.
    """
    text = unicodedata.normalize("NFKC", output).strip()
    for pattern in (_WHOLE, _CUE, _LEADING):
        match = pattern.search(text)
        if match and (letters := _letters(match.group(1), options)):
            return letters
    named = [k for k, v in options.items() if v and v.strip("。") in text]
    # Drop an option whose text is only part of another named option's text.
    named = [k for k in named if not any(k != o and options[k] in options[o] for o in named)]
    return frozenset(named) if len(named) == 1 else None


def best_letter(top_logprobs: dict[str, float], options: dict[str, str]) -> str | None:
    """The option letter with the highest log-probability among the first token's top."""
    scored = {}
    for token, logprob in top_logprobs.items():
        letter = unicodedata.normalize("NFKC", token).strip().strip("(（")
        if letter in options and logprob > scored.get(letter, float("-inf")):
            scored[letter] = logprob
    return max(scored, key=scored.__getitem__) if scored else None


class McqTask(Task):
    """Base for the multiple-choice sets; subclasses convert records in `examples`."""

    metric = "Accuracy"
    kind = "accuracy"
    max_tokens = 16
    intro = "以下是医学考试选择题"

    def __init__(self, scoring: Scoring = "generate") -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        self.scoring = scoring

    def request_params(self) -> dict[str, Any]:
        if self.scoring == "logprob":
            return {"max_tokens": 1, "logprobs": True, "top_logprobs": TOP_LOGPROBS}
        return {}

    def prompt(self, example: Example) -> str:
        options = example.data["options"]
        kind = "多项选择题，选出所有正确答案" if len(example.data["answer"]) > 1 else "单项选择题"
        lines = "\n".join(f"{k}. {v}" for k, v in options.items())
        return (
            f"{self.intro}（{kind}），只回答选项字母。\n{example.data['question']}\n{lines}\n答案："
        )

    def answer(self, example: Example) -> str:
        return example.data["answer"]

    def score(self, example: Example, reply: Reply) -> Scored:
        options = example.data["options"]
        letter = best_letter(reply.top_logprobs, options) if self.scoring == "logprob" else None
        # No option letter among the top tokens: read the generated text instead.
        chosen = frozenset(letter) if letter else extract_letters(reply.text, options)
        predicted = "".join(sorted(chosen)) if chosen else None
        return Scored(float(predicted == example.data["answer"]), predicted)


def _mcq_example(
    example_id: str, question: str, options: dict[str, str], answer: str, subject: str | None = None
) -> Example | None:
    """A normalised item, or None when the gold answer is unusable (CMExam's "nan")."""
    letters = "".join(sorted(set(answer.strip().upper())))
    if not letters or any(ch not in options for ch in letters):
        return None
    data = {"question": question, "options": options, "answer": letters}
    return Example(id=example_id, data=data, subject=subject)


class CMExam(McqTask):
    """CMExam validation split: 5 options (205 items have 4), 210 multi-answer items."""

    name = "mcq-cmexam"
    title = "CMExam"
    eval_file = "mcq/cmexam/cmexam_val.jsonl"

    def examples(self, records: list[dict[str, Any]], split: str) -> list[Example]:
        items = (
            _mcq_example(
                r["id"], r["question"], {k: v for k, v in r["options"].items() if v}, r["answer"]
            )
            for r in records
        )
        return [item for item in items if item is not None]


class CNMLEQA(McqTask):
    """CNMLEQA-3k: 5 options ``opa``..``ope``; broken down by question type."""

    name = "mcq-cnmleqa"
    title = "CNMLEQA"
    eval_file = "mcq/cnmleqa/CNMLEQA-3k.jsonl"

    def examples(self, records: list[dict[str, Any]], split: str) -> list[Example]:
        items = []
        for r in records:
            options = {k[-1].upper(): r[k] for k in ("opa", "opb", "opc", "opd", "ope") if r.get(k)}
            answer = str(r["answer"])[-1]
            items.append(
                _mcq_example(r["id"], r["question"], options, answer, r.get("question_type"))
            )
        return [item for item in items if item is not None]


class ClinicalQA(CMExam):
    """ClinicalQA (the paper's 4-option clinical set; not public, not shipped): place
    it as JSONL in CMExam's shape at ``mcq/clinicalqa/clinicalqa.jsonl`` to run it."""

    name = "mcq-clinicalqa"
    title = "ClinicalQA"
    eval_file = "mcq/clinicalqa/clinicalqa.jsonl"
