"""What an evaluation task is: data, prompt, answer parsing and its metric.

A task never talks HTTP. The runner asks it for the chat request of an example,
sends it through the client, and hands the reply back to `score`, which returns the
per-example unit its metric kind aggregates (see `metrics`). Keeping the unit per
example is what makes the report resumable, comparable and bootstrappable.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medgo_trainer.evaluation.metrics import MetricKind


class TaskDataMissing(FileNotFoundError):
    """The task's data file is not under the data directory (e.g. CHIP-CDEE today)."""


class TaskDataError(ValueError):
    """A data file lacks a field its task needs: said at load, before any request."""


@dataclass(frozen=True)
class Example:
    """One evaluation item; ``subject`` groups items for the per-subject breakdown."""

    id: str
    data: dict[str, Any]
    subject: str | None = None


@dataclass(frozen=True)
class Reply:
    """What the endpoint answered: the text, or in log-likelihood scoring the summed
    log-probability of each candidate continuation (``{continuation: logprob}``).
    ``error`` is set, with empty text, when the endpoint could not take the prompt at
    all (longer than its context)."""

    text: str
    choice_logprobs: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Scored:
    """The metric unit of one example plus a short, human-readable prediction."""

    unit: Any
    prediction: Any


def check_fields(records: list[dict[str, Any]], required: tuple[str, ...], path: Path) -> None:
    """Raise `TaskDataError` naming the first record that lacks a required field."""
    for i, record in enumerate(records):
        if not isinstance(record, dict):
            raise TaskDataError(f"{path}: record {i} is not a JSON object")
        missing = [name for name in required if name not in record]
        if missing:
            raise TaskDataError(
                f"{path}: record {i} lacks field(s) {', '.join(missing)} "
                f"(this task needs {', '.join(required)})"
            )


def read_records(path: Path) -> list[dict[str, Any]]:
    """Read a JSON array, a single JSON object or a JSONL file (all three occur)."""
    if not path.is_file():
        raise TaskDataMissing(f"{path} not found: set MEDGO_TRAINER_DATA_DIR / --data-dir")
    text = path.read_text(encoding="utf-8")
    try:
        whole = json.loads(text)
    except json.JSONDecodeError:  # JSONL: one object per line
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return whole if isinstance(whole, list) else [whole]


class Task(ABC):
    """Base class: subclasses set the class attributes and implement the four hooks."""

    name: str  # CLI name, e.g. "cmeee"
    title: str  # Table 1 name, e.g. "CMeEE"
    metric: str  # what the score means, e.g. "Micro-F1 (strict)"
    kind: MetricKind
    max_tokens: int = 64
    eval_file: str  # path under the data directory
    train_file: str | None = None  # few-shot pool; None = the unused part of eval_file
    required: tuple[str, ...] = ()  # fields every record of the task's files must have

    def available(self, data_dir: Path) -> bool:
        return (data_dir / self.eval_file).is_file()

    def load(self, data_dir: Path) -> list[Example]:
        """The labelled evaluation split, in file order."""
        return self.examples(self.records(data_dir / self.eval_file), "dev")

    def records(self, path: Path) -> list[dict[str, Any]]:
        """A data file's records, checked for the fields this task reads."""
        records = read_records(path)
        check_fields(records, self.required, path)
        return records

    def shot_pool(self, data_dir: Path) -> list[Example] | None:
        """Demonstrations for few-shot prompts, or None to draw from the eval split."""
        if self.train_file is None or not (data_dir / self.train_file).is_file():
            return None
        return self.examples(self.records(data_dir / self.train_file), "train")

    def examples(self, records: list[dict[str, Any]], split: str) -> list[Example]:
        """Wrap raw records; override to filter unusable ones or set ``subject``."""
        return [Example(id=str(r.get("id", f"{split}-{i}")), data=r) for i, r in enumerate(records)]

    def messages(self, example: Example, shots: list[Example]) -> list[dict[str, str]]:
        """Few-shot as a conversation: each demonstration is a user turn answered by
        its gold answer, then the real question. Zero-shot when ``shots`` is empty."""
        turns: list[dict[str, str]] = []
        for shot in shots:
            turns.append({"role": "user", "content": self.prompt(shot)})
            turns.append({"role": "assistant", "content": self.answer(shot)})
        turns.append({"role": "user", "content": self.prompt(example)})
        return turns

    def completion_prompt(self, example: Example, shots: list[Example]) -> str:
        """Few-shot as one plain text (no chat template): each demonstration's prompt
        followed by its gold answer, then the real prompt, for log-likelihood scoring."""
        done = "".join(f"{self.prompt(s)}{self.answer(s)}\n\n" for s in shots)
        return done + self.prompt(example)

    def choices(self, example: Example) -> list[str] | None:
        """Candidate answers scored by log-likelihood, or None to generate and parse."""
        return None

    def chat_template(self) -> bool:
        """Whether log-likelihood prompts go through the served chat template."""
        return True

    @abstractmethod
    def prompt(self, example: Example) -> str:
        """The instruction and input for one example (Chinese, like the data)."""

    @abstractmethod
    def answer(self, example: Example) -> str:
        """The gold answer written the way the prompt asks the model to write it."""

    @abstractmethod
    def score(self, example: Example, reply: Reply) -> Scored:
        """Parse the reply and score it; unparseable output scores as wrong/empty."""
