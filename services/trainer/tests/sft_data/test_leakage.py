"""The leakage guard: planted evaluation items are removed and reported."""

from __future__ import annotations

import json
from pathlib import Path

from medgo_trainer.eval.catalog import make_task
from medgo_trainer.sft_data.example import SftExample, chat
from medgo_trainer.sft_data.leakage import LeakageConfig, LeakageGuard


def _example(question: str) -> SftExample:
    return SftExample(chat(question, "答案"), "test", "planted")


def test_containment_threshold_and_short_items() -> None:
    guard = LeakageGuard(LeakageConfig(ngram=4, threshold=0.5, min_chars=10))
    guard.add("t", "long", "患者出现持续性胸痛并向左肩放射伴大汗")
    guard.add("t", "short", "二氧化碳有害吗？")
    leak = guard.check(_example("请问：患者出现持续性胸痛并向左肩放射伴大汗，考虑什么？"))
    assert leak is not None and leak.eval_id == "long" and leak.overlap == 1.0
    assert guard.check(_example("患者出现持续性咳嗽")) is None  # a few shared n-grams only
    assert guard.check(_example("问题：二氧化碳有害吗？")).eval_id == "short"  # type: ignore[union-attr]
    assert guard.check(_example("我想知道二氧化碳有害吗？多少浓度")) is None


def test_planted_exam_question_is_caught(data_dir: Path, guard: LeakageGuard) -> None:
    task = make_task("mcq-cmexam")
    item = task.load(data_dir)[100]
    dialogue = _example(f"老师好，我在复习时遇到这道题：{item.data['question']} 该怎么理解？")
    leak = guard.check(dialogue)
    assert leak is not None and leak.eval_task in {"mcq-cmexam", "mcq-cnmleqa"}
    assert leak.overlap >= 0.5
    assert guard.check(_example("高血压患者平时饮食需要注意什么？")) is None


def test_build_removes_and_reports_a_planted_item(
        data_dir: Path, tmp_path: Path, guard: LeakageGuard, write_mixture) -> None:
    """End to end: a reviewed guideline pair that copies a CBLUE dev sentence."""
    from medgo_trainer.sft_data.build import build_mixture
    from medgo_trainer.sft_data.mixture import load_mixture
    from medgo_trainer.sft_data.review import Candidate, ReviewQueue

    dev = make_task("cmeee").load(data_dir)[7].data["text"]
    queue = ReviewQueue(tmp_path / "q.sqlite3", create=True)
    queue.add([Candidate("leak", "段落", f"{dev}这句话说明了什么？", "……", "m"),
               Candidate("ok", "段落", "阿司匹林的常见不良反应有哪些？", "胃肠道反应。", "m")])
    for cid in ("leak", "ok"):
        queue.decide(cid, "approve", "dr.test")
    recipe = write_mixture({"sources": [{"name": "guidelines",
                                         "options": {"queue": str(queue.path)}}]})
    sheet = build_mixture(load_mixture(recipe), data_dir, tmp_path / "out", guard=guard)
    assert sheet["examples"] == 1
    assert sheet["removed"]["leakage"] == {"guidelines/guideline-qa ~ cmeee": 1}
    leaks = [json.loads(line) for line in (tmp_path / "out/leakage.jsonl").open()]
    assert [(x["eval_task"], x["source"]) for x in leaks] == [("cmeee", "guidelines")]
    rows = [json.loads(line) for line in (tmp_path / "out/sft.jsonl").open()]
    assert rows[0]["messages"][0]["content"] == "阿司匹林的常见不良反应有哪些？"
