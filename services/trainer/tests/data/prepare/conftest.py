"""Fixtures of the prepare tests (both engines): a planted corpus and its shard reader."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

LONG = (
    "高血压患者应当长期规律服用降压药物，定期监测血压，低盐低脂饮食，适量运动，"
    "戒烟限酒，保持情绪稳定，如出现头晕头痛胸闷等症状应及时就医复诊。"
)


def _shard_rows(out: Path) -> list[dict]:
    rows = []
    for shard in sorted(out.glob("part-*.jsonl")):
        rows += [json.loads(line) for line in shard.read_text(encoding="utf-8").splitlines()]
    return rows


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    src = tmp_path / "raw"
    src.mkdir()
    records = [
        {"问": "高血压怎么办？", "答": LONG},  # kept
        {"问": "高血压怎么办？", "答": LONG},  # exact duplicate
        {"问": "高血压怎么办？", "答": LONG.replace("适量运动", "适当运动")},  # near duplicate
        {"问": "短", "答": "太短"},  # length
        {"问": "What is hypertension?", "答": "High blood pressure " * 5},  # language
        {"问": "点击查看更多", "答": "版权所有 某某网站"},  # boilerplate only
        {"text": "患者张三，男，45岁，电话13812345678，空腹血糖偏高，需调整胰岛素剂量并复查。"},
        {"text": "ＡＢＣ试验阳性提示感染，建议结合临床症状与血常规结果综合判断，必要时治疗。"},
    ]
    (src / "a.jsonl").write_text(
        "\n".join(json.dumps(r, ensure_ascii=False) for r in records) + "\n", encoding="utf-8"
    )
    with (src / "b.csv").open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["department", "title", "ask", "answer"])
        writer.writeheader()
        row = {"department": "心内科", "title": "胸闷", "ask": "气短", "answer": LONG[::-1]}
        writer.writerow(row)
    gastritis = "慢性胃炎需要规律饮食，避免辛辣刺激食物，必要时胃镜检查。"
    (src / "c.txt").write_text(f"版权所有\n\n{gastritis}\n")
    return src


@pytest.fixture
def long_text() -> str:
    """A document every filter keeps."""
    return LONG


@pytest.fixture
def shard_rows() -> Callable[[Path], list[dict]]:
    """`shard_rows(out)`: every row of a prepared output's shards, in order."""
    return _shard_rows
