"""Doctor-patient QA and dialogues from the corpus → single- and multi-turn chats.

The corpus readers of `medgo_trainer.data.corpus` (the ones medgo-tiny is built
from) do the layout work; the one multi-turn file they do not read, Huatuo's liver
cancer dialogues (``<user>: … <bot>: …`` history plus the final answer), is read
here. This module picks the files and strips the consultation
sites' boilerplate from the doctor's turns: greetings, sign-offs ("祝您健康"),
"hope this helps" lines and the hospital-advert sentences these sites append. An
answer that is nothing but boilerplate is dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

from medgo_trainer.data.corpus import SOURCES, Dialogue
from medgo_trainer.data.sft.example import SftExample, SourceError
from medgo_trainer.data.sft.sourcefiles import SourceFile

NAME = "dialogues"
OPTIONS = frozenset({"files"})
# Zhongjing's CMtMedQA is an evaluation set and is not among SOURCES.
_FIELDS = {
    "chatmed/ChatMed-Consult_test.json": ("query", "response"),
    "huatuo_bentsao/llama_data.json": ("instruction", "output"),
    "huatuo_bentsao/liver_cancer.json": ("instruction", "output"),
    "medicalgpt/medical_corpus.txt": ("问", "答"),
    "medicalgpt/medical_sft_1K_format.jsonl": ("conversations",),
    "toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv": ("title", "ask", "answer"),
    "zhongjing/huatuo26M_test_first3000.json": ("instruction", "output"),
}

_TURN = re.compile(r"<(user|bot)>\s*[:：]\s*")


def _tagged_history(path: Path) -> Iterator[Dialogue | None]:
    """``{"instruction": " <user>: q1 <bot>: a1 <user>: q2", "output": a2}`` → turns."""
    for row in json.loads(path.read_text(encoding="utf-8")):
        parts = _TURN.split(row["instruction"])[1:]  # [tag, text, tag, text, ...]
        roles = {"user": "user", "bot": "assistant"}
        turns = [{"role": roles[tag], "content": text.strip()}
                 for tag, text in zip(parts[::2], parts[1::2], strict=True)]
        turns.append({"role": "assistant", "content": row["output"].strip()})
        alternating = all(t["role"] == ("user", "assistant")[i % 2] for i, t in enumerate(turns))
        yield turns if alternating and len(turns) % 2 == 0 else None


READERS: dict[str, Callable[[Path], Iterator[Dialogue | None]]] = {
    **SOURCES, "huatuo_bentsao/liver_cancer.json": _tagged_history}

_SENTENCE = re.compile(r"[^。！!？?\n]*[。！!？?\n]?")
_BOILERPLATE = re.compile(
    r"^(?:问题分析[:：])?\s*(?:你好|您好|谢谢|谢谢您?的提问|感谢您?的(?:提问|信任))[,，:：!！。]?$"
    r"|望[^。]{0,12}(?:帮助|协助)"
    r"|以上(?:可以)?[做作]?为参考|以上是对.{0,40}的建议"
    r"|^祝[^。]{0,10}(?:健康|康复|平安)"
    r"|(?:决定|选择|到)一家(?:正规|权威|三甲|专业)[^。]{0,6}医院"
    r"|^(?:调节身心健康|患者朋友理应)"
)


def files(options: dict) -> tuple[SourceFile, ...]:
    """The corpus files to read: ``options['files']`` (paths under corpus/) or all."""
    chosen = options.get("files") or list(_FIELDS)
    unknown = [f for f in chosen if f not in _FIELDS]
    if unknown:
        raise SourceError(f"source 'dialogues': unknown file(s) {unknown}; known: {list(_FIELDS)}")
    return tuple(SourceFile(f"corpus/{f}", "csv" if f.endswith(".csv") else "json", _FIELDS[f])
                 for f in chosen)


_GREETING = re.compile(r"^(?:问题分析[:：])?\s*(?:(?:你好|您好)[,，!！:：。\s]*)+")


def strip_boilerplate(answer: str) -> str:
    """The answer without the site's greeting / sign-off / advert sentences."""
    answer = _GREETING.sub("", answer.strip())
    kept = [s for s in _SENTENCE.findall(answer) if s.strip() and not _BOILERPLATE.search(
        s.strip().rstrip("。！!？?"))]
    return "".join(kept).strip()


def clean(dialogue: Dialogue) -> Dialogue | None:
    turns = []
    for message in dialogue:
        content = message["content"].strip()
        if message["role"] == "assistant":
            content = strip_boilerplate(content)
        if not content:
            return None
        turns.append({"role": message["role"], "content": content})
    return turns


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    for spec in files(options):
        reader = READERS[spec.path.removeprefix("corpus/")]
        for dialogue in reader(spec.resolve(data_dir)):
            cleaned = clean(dialogue) if dialogue else None
            if cleaned:
                task = "dialogue-multi" if len(cleaned) > 2 else "dialogue-single"
                yield SftExample(cleaned, NAME, task, meta={"file": spec.path})
