"""Chief complaints → consultation examples: differentials to consider and next steps.

Derived from the corpus' doctor-patient QA (Toyhom), not generated: the complaint is
the patient's title, the differentials are the ICD-10 disease names (CHIP-CDN's
Beijing clinical v601 list) that the answering doctor mentioned, and the next steps
are the doctor's own sentences about examinations or seeing a doctor. Restructuring
a doctor's answer into this consultation form is our doing, so every example is
marked ``synthetic``; pairs that name no disease or no next step are skipped.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from medgo_trainer.data.sft.dialogues import strip_boilerplate
from medgo_trainer.data.sft.example import SftExample, chat
from medgo_trainer.data.sft.sourcefiles import SourceFile

NAME = "complaints"
OPTIONS = frozenset({"max_differentials"})
DIALOGUES = SourceFile("corpus/toyhom_medical_dialogue/sample_internal_medicine_5000-6000.csv",
                       "csv", ("title", "ask", "answer"))
ICD = SourceFile("cblue/CHIP-CDN/icd10_beijing_clinical_v601.tsv", "tsv", ("0", "1"))
FILES = (DIALOGUES, ICD)
MIN_NAME, MAX_NAME = 3, 12  # two-character names ("肠炎") match inside longer words

_NEXT_STEP = re.compile(
    r"检查|复查|化验|就诊|就医|看医生|门诊|住院|B超|彩超|CT|核磁|心电图|胃镜|肠镜"
)
_SENTENCE = re.compile(r"[^。！!？?；;\n]+")


def disease_names(path: Path) -> frozenset[str]:
    with path.open(encoding="utf-8", newline="") as fh:
        names = (row[1].strip() for row in csv.reader(fh, delimiter="\t") if len(row) > 1)
        return frozenset(n for n in names if MIN_NAME <= len(n) <= MAX_NAME)


def mentioned(text: str, names: frozenset[str]) -> list[str]:
    """Disease names in ``text``, longest match first at each position, in order."""
    found: list[str] = []
    i = 0
    while i < len(text):
        for size in range(min(MAX_NAME, len(text) - i), MIN_NAME - 1, -1):
            if text[i:i + size] in names:
                if text[i:i + size] not in found:
                    found.append(text[i:i + size])
                i += size
                break
        else:
            i += 1
    return found


def consultation(title: str, answer: str, names: frozenset[str], limit: int) -> str | None:
    """The consultation answer, or None when the doctor named no disease or next step."""
    differentials = mentioned(answer, names)[:limit]
    steps = [s.strip() for s in _SENTENCE.findall(answer) if _NEXT_STEP.search(s)]
    if not differentials or not steps:
        return None
    return (f"针对“{title}”，需要考虑的情况包括：{'、'.join(differentials)}。\n"
            f"下一步建议：{'；'.join(steps)}。\n以上仅供参考，具体请以医生面诊为准。")


def build(data_dir: Path, options: dict) -> Iterator[SftExample]:
    names = disease_names(ICD.resolve(data_dir))
    limit = int(options.get("max_differentials", 4))
    with DIALOGUES.resolve(data_dir).open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            title = row["title"].strip().rstrip("？?")
            answer = consultation(title, strip_boilerplate(row["answer"]), names, limit)
            if title and answer:
                question = f"患者主诉：{title}。请给出需要考虑的鉴别诊断和下一步建议。"
                yield SftExample(chat(question, answer), NAME, "chief-complaint", True)
