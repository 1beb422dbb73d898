"""Guideline / textbook passages → QA pairs by an LLM, via the physicians' review queue.

`generate` asks any OpenAI-compatible endpoint (the gateway, or vLLM) for one
question and its answer per passage, answerable from the passage alone, and stores
them as *candidates*; nothing generated enters a mixture until a reviewer approves
it (`review.review`, the `medgo-train sft-review` command). The mixture source
`guidelines` reads only the approved pairs of its ``queue``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, SourceError, chat
from medgo_trainer.data.sft.llm import Endpoint, complete
from medgo_trainer.data.sft.review import Candidate, ReviewQueue

NAME = "guidelines"
OPTIONS = frozenset({"queue"})
INSTRUCTION = (
    "请根据下面的医学指南段落，提出一个问题，并且只依据段落内容回答。"
    "严格按两行输出：\n问题：……\n答案：……\n\n段落：{passage}"
)
_PAIR = re.compile(r"问题[:：]\s*(?P<q>.+?)\s*\n+\s*答案[:：]\s*(?P<a>.+)", re.S)


def read_passages(path: Path) -> list[str]:
    """Passages separated by blank lines (a paragraph each)."""
    if not path.is_file():
        raise SourceError(f"passages file {path} does not exist")
    passages = [p.strip() for p in re.split(r"\n\s*\n", path.read_text(encoding="utf-8"))]
    passages = [p for p in passages if p]
    if not passages:
        raise SourceError(f"passages file {path} is empty")
    return passages


def parse_pair(reply: str) -> tuple[str, str] | None:
    """``问题：…`` / ``答案：…`` out of the reply, or None when it is not in that form."""
    match = _PAIR.search(reply)
    if match is None:
        return None
    return match["q"].strip(), match["a"].strip()


def candidate_id(passage: str, question: str, answer: str) -> str:
    digest = hashlib.blake2b(f"{passage}\0{question}\0{answer}".encode(), digest_size=8)
    return digest.hexdigest()


def generate(passages: list[str], endpoint: Endpoint, queue: ReviewQueue,
             *, max_tokens: int = 256) -> dict[str, int]:
    """One candidate per passage; replies not in the asked form are counted, not kept."""
    candidates, unparsed = [], 0
    for passage in passages:
        prompt = INSTRUCTION.format(passage=passage)
        reply = complete(endpoint, [{"role": "user", "content": prompt}], max_tokens=max_tokens)
        pair = parse_pair(reply)
        if pair is None:
            unparsed += 1
            continue
        candidates.append(Candidate(candidate_id(passage, *pair), passage, *pair,
                                    model=endpoint.model))
    return {"passages": len(passages), "queued": queue.add(candidates), "unparsed": unparsed}


def _queue_path(options: dict) -> Path:
    if not options.get("queue"):
        raise SourceError("source 'guidelines' needs options.queue (the review queue file)")
    return Path(options["queue"])


def check(data_dir: Path, options: dict) -> list[Path]:
    """The queue must exist and hold at least one approved pair."""
    path = _queue_path(options)
    if not ReviewQueue(path).approved():
        raise SourceError(f"source 'guidelines': {path} has no approved pair yet "
                          "(run `medgo-train sft-review`)")
    return [path]


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    for pair in ReviewQueue(_queue_path(options)).approved():
        yield SftExample(chat(pair.question, pair.answer), NAME, "guideline-qa", True,
                         {"id": pair.id, "model": pair.model})
