"""Multiple choice: ClinicalQA's format (question + options → letter) and the exam sets.

Each dataset is normalised to ``{"question", "options": {letter: text}, "answer":
"B" or "ABD"}``. An item is right only when the chosen letter set equals the gold
set, so multi-answer items (CMExam has 210) need every letter. The prompt never says
how many answers an item has: a set with multi-answer items says "one or more" on
every item. Three scoring modes:

- ``generate``: the model answers in text, with room for a verbose answer;
  `extract_letters` reads the choice by the field's conventions (below).
- ``logprob``: as lm-evaluation-harness scores multiple choice, the log-likelihood of
  each candidate answer as the continuation of the prompt, read from the completions
  endpoint's prompt log-probabilities; the likeliest candidate is the choice. The
  candidates are the single letters, or every non-empty letter set where the task has
  multi-answer items (the same list for every item of the task, so it reveals nothing).
- ``logprob-chat``: the same, with the prompt rendered by the served chat template
  (the conversation up to the assistant's turn), as chat models are asked.
"""

from __future__ import annotations

import itertools
import re
import unicodedata
from typing import Any, Literal

from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

Scoring = Literal["generate", "logprob", "logprob-chat"]
SCORINGS: tuple[Scoring, ...] = ("generate", "logprob", "logprob-chat")

_L = "[A-E]"
# Letters joined within one clause ("A、C", "A和C", "ABD", "A, C"); the group must end
# at a clause boundary, so "答案是A，B是错误的" yields A, never AB.
_GROUP = rf"({_L}(?:\s*[、,，和与及/]?\s*{_L})*)"
_END = r"(?=$|[\s。.．;；,，!！?？)）\]】:：])"
_OPEN, _CLOSE = r"[(（\[【]?\s*", r"\s*[)）\]】]?"
_CUES = [
    # 答案：B / 正确答案是 C / 应选D / 选B / 我选择 E (not 不选A, 不应选A)
    re.compile(
        r"(?<![不非])(?:正确答案|最佳答案|参考答案|答案|应该选择|应该选|应选|选择|选)"
        r"\s*(?:应该是|应为|应是|就是|是|为)?\s*[:：]?\s*" + _OPEN + _GROUP + _CLOSE + _END
    ),
    # 我认为是B / 应该是 C (not 不是A)
    re.compile(r"(?<![不非])(?:是|为)\s*" + _OPEN + _GROUP + _CLOSE + _END),
    # C选项 / 选B项 (not 不选C项, 排除B项, A项错误)
    re.compile(
        rf"(?<![A-Za-z])({_L}(?:\s*[、和与及]\s*{_L})*)\s*(?:选项|项)(?!\s*(?:错|不|有误|是错))"
    ),
    # The answer is B / Answer: (C) / option D / I choose A
    re.compile(
        r"(?i:\b(?:answer|option|choice)\s*(?:is|would be|should be)?\s*[:：]?"
        r"|\b(?:choose|pick|select)\s+(?:option\s+)?)\s*" + _OPEN + _GROUP + _CLOSE + _END
    ),
]
_NEGATION = re.compile(r"(?:不|非|排除|除了|除|(?i:\bnot|n't))\s*(?:应该?|要)?(?:选择?|是)?\s*$")
_WHOLE = re.compile(r"^" + _OPEN + _GROUP + _CLOSE + r"[.。]?$")
_LEADING = re.compile(r"^" + _OPEN + r"(" + _L + r")(?:[)）\].．、:：\s]|$)")
_MARKDOWN = re.compile(r"\*\*|__|`+|^#+\s*|^>\s*|(?<!\w)[*_](?=\S)|(?<=\S)[*_](?!\w)", re.M)


def _letters(group: str, options: dict[str, str]) -> frozenset[str] | None:
    letters = frozenset(ch for ch in group if ch in options)
    return letters or None


def _normalise(output: str) -> str:
    """NFKC (full-width letters count as ASCII) and markdown emphasis removed."""
    return _MARKDOWN.sub("", unicodedata.normalize("NFKC", output)).strip()


def _last_cue(text: str, options: dict[str, str]) -> frozenset[str] | None:
    """The letters of the last answer cue in ``text`` that is not negated."""
    found: list[tuple[int, frozenset[str]]] = []
    for pattern in _CUES:
        for match in pattern.finditer(text):
            letters = _letters(match.group(1), options)
            if letters and not _NEGATION.search(text[max(0, match.start() - 6) : match.start()]):
                found.append((match.start(1), letters))
    return max(found, key=lambda f: f[0])[1] if found else None


def extract_letters(output: str, options: dict[str, str]) -> frozenset[str] | None:
    """The chosen option letters in a free-text answer, or None when no choice is found.

    Markdown emphasis is stripped first. Then, in order: the whole reply is letters
    ("B", "(C)", "ABD"); the *last* explicit answer cue, negated ones ignored
    ("答案：B", "C选项", "我认为是B", "选B", "The answer is B"; not "不选A"); a leading
    letter ("B. 出血部位"); the text of exactly one option. Letters separated by
    a clause boundary are never merged ("答案是A，B是错误的" is A).
    """
    text = _normalise(output)
    whole = _WHOLE.match(text)
    if whole and (letters := _letters(whole.group(1), options)):
        return letters
    if (letters := _last_cue(text, options)) is not None:
        return letters
    leading = _LEADING.match(text)
    if leading and (letters := _letters(leading.group(1), options)):
        return letters
    named = [k for k, v in options.items() if v and v.strip("。") in text]
    # Drop an option whose text is only part of another named option's text.
    named = [k for k in named if not any(k != o and options[k] in options[o] for o in named)]
    return frozenset(named) if len(named) == 1 else None


def answer_sets(letters: str, multi_answer: bool) -> list[str]:
    """The candidate answers of log-likelihood scoring, in canonical order."""
    if not multi_answer:
        return list(letters)
    return [
        "".join(combo)
        for size in range(1, len(letters) + 1)
        for combo in itertools.combinations(letters, size)
    ]


class McqTask(Task):
    """Base for the multiple-choice sets; subclasses convert records in `examples`."""

    metric = "Accuracy"
    kind = "accuracy"
    max_tokens = 512  # room for a verbose answer that names its letter at the end
    intro = "以下是医学考试选择题"
    multi_answer = False  # True: some items have several correct options

    def __init__(self, scoring: Scoring = "generate") -> None:
        if scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {scoring!r}")
        self.scoring = scoring

    def prompt(self, example: Example) -> str:
        options = example.data["options"]
        kind = "每题有一个或多个正确答案，选出所有正确答案" if self.multi_answer else "单项选择题"
        lines = "\n".join(f"{k}. {v}" for k, v in options.items())
        return (
            f"{self.intro}（{kind}），回答选项字母。\n{example.data['question']}\n{lines}\n答案："
        )

    def answer(self, example: Example) -> str:
        return example.data["answer"]

    def choices(self, example: Example) -> list[str] | None:
        if self.scoring == "generate":
            return None
        return answer_sets("".join(sorted(example.data["options"])), self.multi_answer)

    def chat_template(self) -> bool:
        return self.scoring == "logprob-chat"

    def score(self, example: Example, reply: Reply) -> Scored:
        if reply.choice_logprobs:
            best = max(reply.choice_logprobs, key=reply.choice_logprobs.__getitem__)
            predicted: str | None = "".join(sorted(best))
        else:
            chosen = extract_letters(reply.text, example.data["options"])
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
    required = ("id", "question", "options", "answer")
    multi_answer = True

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
    required = ("id", "question", "answer")

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
    multi_answer = False
