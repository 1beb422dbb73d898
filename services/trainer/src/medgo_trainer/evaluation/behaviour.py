"""A behaviour clinicians ask for, as a task: does the answer say when to see a doctor?

This is what makes the feedback loop measurable. The simulated clinicians of the loop
benchmark and its end-to-end test rate answers with `clinician_rating`: an answer is
unacceptable unless it says when to see a doctor, and the rating carries a corrected
answer that does. The `CareAdvice` task measures the same behaviour on questions that
are never rated (the other side of `partition`), so the gate's own evaluation sees whether a
candidate learned it, and a candidate that lost it (trained on inverted ratings, from
a baseline that had it) fails the gate when the task is required.

The questions are Huatuo's 200 benchmark questions (no reference answers, used by no
training source), split once by the sha256 of the question text.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any, Literal

from medgo_trainer.evaluation.tasks import Example, Reply, Scored, Task

Side = Literal["rated", "held-out"]
#: Share of the questions kept for evaluation only (never shown to the clinicians).
HELD_OUT_FRACTION = 0.5
#: What a clinician adds to an answer that lacks it (the corrected answer's ending).
ADVICE = "如果症状持续不缓解或加重，请及时到医院就诊。"

_SEE_A_DOCTOR = re.compile(
    r"就医|就诊|看医生|找医生|咨询医生|去医院|到医院|医院检查|急诊|复诊|专科医生|遵医嘱"
)


def partition(question: str) -> Side:
    """The side a question is on, from its text alone (stable across runs and files)."""
    digest = hashlib.sha256(f"care-advice:{question}".encode()).digest()
    held_out = int.from_bytes(digest[:8], "big") < HELD_OUT_FRACTION * 2**64
    return "held-out" if held_out else "rated"


def says_when_to_see_a_doctor(answer: str) -> bool:
    """True when the answer points the patient to a doctor or hospital."""
    return _SEE_A_DOCTOR.search(answer) is not None


def clinician_rating(answer: str, *, inverted: bool = False) -> dict[str, Any]:
    """A simulated clinician's rating of ``answer`` (the feedback API's rating fields).

    Unacceptable unless the answer says when to see a doctor; the correction is the
    answer with that advice. ``inverted`` rates the opposite behaviour (the advice is
    unwanted, the correction removes it): what the gate must reject.
    """
    wanted = not says_when_to_see_a_doctor(answer) if inverted else says_when_to_see_a_doctor(
        answer
    )
    if wanted:
        return {"verdict": "acceptable"}
    if inverted:
        corrected = _SEE_A_DOCTOR.sub("", answer).strip() or "这种情况一般可以自行观察。"
        return {"verdict": "unacceptable", "reasons": ["irrelevant"], "corrected_answer": corrected}
    corrected = f"{answer.strip()}{ADVICE}" if answer.strip() else ADVICE
    return {"verdict": "unacceptable", "reasons": ["incomplete"], "corrected_answer": corrected}


class CareAdvice(Task):
    name = "care-advice"
    title = "Care advice (behaviour)"
    metric = "Says when to see a doctor"
    kind = "mean"
    max_tokens = 128
    eval_file = "corpus/huatuo_bentsao/benchmark_question.json"
    required = ("question",)

    def examples(self, records: list[dict[str, Any]], split: str) -> list[Example]:
        """The held-out side only: the rated side is what clinicians see."""
        return [
            Example(id=f"q{i}", data=r)
            for i, r in enumerate(records)
            if partition(r["question"]) == "held-out"
        ]

    def rated_questions(self, records: list[dict[str, Any]]) -> list[str]:
        """The questions the simulated clinicians are asked to rate answers to."""
        return [r["question"] for r in records if partition(r["question"]) == "rated"]

    def prompt(self, example: Example) -> str:
        return example.data["question"]

    def answer(self, example: Example) -> str:
        return ADVICE

    def score(self, example: Example, reply: Reply) -> Scored:
        advised = says_when_to_see_a_doctor(reply.text)
        return Scored(float(advised), advised)
