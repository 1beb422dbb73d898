"""Readers for the bundled Chinese medical corpus (`<data_dir>/corpus`, see MANIFEST.md).

Every source is a set of patient questions with answers, in six different layouts;
each reader turns its layout into chat dialogues `[{"role": "user", ...},
{"role": "assistant", ...}]`, from which medgo-tiny takes both its pre-training text
and its SFT conversations. Zhongjing's CMtMedQA is left out: its authors publish it as
an evaluation set, and the question-only files have nothing to learn an answer from.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path

Message = dict[str, str]
Dialogue = list[Message]


def _qa(question: str, answer: str) -> Dialogue | None:
    question, answer = question.strip(), answer.strip()
    if not question or not answer:
        return None
    return [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]


def _jsonl(path: Path) -> Iterator[dict]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def _chatmed(path: Path) -> Iterator[Dialogue | None]:
    for row in _jsonl(path):  # query = "<s>问：\n...\n答：\n"
        query = row["query"].removeprefix("<s>").strip().removeprefix("问：")
        yield _qa(query.removesuffix("答："), row["response"])


def _instruction(path: Path) -> Iterator[Dialogue | None]:
    for row in _jsonl(path):
        yield _qa(f"{row['instruction']}\n{row.get('input', '')}", row["output"])


def _wenda(path: Path) -> Iterator[Dialogue | None]:
    for row in _jsonl(path):
        yield _qa(row["问"], row["答"])


def _sharegpt(path: Path) -> Iterator[Dialogue | None]:
    roles = {"human": "user", "gpt": "assistant"}
    for row in _jsonl(path):
        turns = [{"role": roles[t["from"]], "content": t["value"].strip()}
                 for t in row["conversations"] if t["from"] in roles and t["value"].strip()]
        yield turns if len(turns) >= 2 and turns[0]["role"] == "user" else None


def _toyhom(path: Path) -> Iterator[Dialogue | None]:
    with path.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            title, ask = row["title"].strip(), row["ask"].strip()
            question = ask if title in ask else f"{title}\n{ask}"
            yield _qa(question, row["answer"])


def _huatuo26m(path: Path) -> Iterator[Dialogue | None]:
    for row in json.loads(path.read_text(encoding="utf-8")):
        yield _qa("".join(row["instruction"]), "".join(row["output"]))


SOURCES: dict[str, Callable[[Path], Iterator[Dialogue | None]]] = {
    "chatmed/ChatMed-Consult_test.json": _chatmed,
    "huatuo_bentsao/llama_data.json": _instruction,
    "medicalgpt/medical_corpus.txt": _wenda,
    "medicalgpt/medical_sft_1K_format.jsonl": _sharegpt,
    "toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv": _toyhom,
    "zhongjing/huatuo26M_test_first3000.json": _huatuo26m,
}


def source_files(data_dir: Path) -> list[Path]:
    """The files read, in a fixed order (their bytes make up the build's input hash)."""
    return [data_dir / "corpus" / name for name in SOURCES]


def read_dialogues(data_dir: Path) -> Iterator[Dialogue]:
    """Every usable dialogue of the bundled corpus, in a fixed order."""
    for path, reader in zip(source_files(data_dir), SOURCES.values(), strict=True):
        if not path.is_file():
            raise FileNotFoundError(
                f"bundled corpus file {path} is missing; set MEDGO_TRAINER_DATA_DIR to the "
                "shared data folder (see its MANIFEST.md)"
            )
        yield from (d for d in reader(path) if d)


def dialogue_text(dialogue: Dialogue) -> str:
    """A dialogue as plain pre-training text: the turns, one paragraph each."""
    return "\n".join(m["content"] for m in dialogue)
