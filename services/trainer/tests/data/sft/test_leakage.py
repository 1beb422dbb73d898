"""The leakage guard: planted evaluation items are removed and reported."""

from __future__ import annotations

import json
from pathlib import Path

from medgo_trainer.data.sft.example import SftExample, chat
from medgo_trainer.data.sft.leakage import EvalInput, LeakageConfig, LeakageGuard, example_inputs
from medgo_trainer.evaluation.catalog import make_task
from medgo_trainer.evaluation.tasks import Example


def _example(question: str) -> SftExample:
    return SftExample(chat(question, "答案"), "test", "planted")


def _guard(config: LeakageConfig, *texts: tuple[str, str]) -> LeakageGuard:
    return LeakageGuard(config, [EvalInput("t", item_id, text) for item_id, text in texts])


def test_containment_threshold_and_short_items() -> None:
    guard = _guard(LeakageConfig(ngram=4, threshold=0.5, min_chars=10),
                   ("long", "患者出现持续性胸痛并向左肩放射伴大汗"), ("short", "二氧化碳有害吗？"))
    leak = guard.check(_example("请问：患者出现持续性胸痛并向左肩放射伴大汗，考虑什么？"))
    assert leak is not None and leak.eval_id == "long" and leak.overlap == 1.0
    assert guard.check(_example("患者出现持续性咳嗽")) is None  # a few shared n-grams only
    assert guard.check(_example("问题：二氧化碳有害吗？")).eval_id == "short"  # type: ignore[union-attr]
    assert guard.check(_example("我想知道二氧化碳有害吗？多少浓度")) is None


def test_a_shared_stem_is_template_but_a_template_only_item_still_counts() -> None:
    stem = "从大多数人的角度来看以下行为是否合乎道德"
    acts = ["我从网上盗版音乐", "我把食物放在冰箱里", "我在路口帮助老人过马路", "我拿走同事的钱包"]
    items = [(f"s{i}", f"{stem}\n{act}") for i, act in enumerate(acts)]
    items.append(("consent", "4）自愿签署知情同意书；"))
    items += [(f"c{i}", f"（{i}）自愿签署知情同意书者。") for i in range(3)]
    guard = _guard(LeakageConfig(ngram=4, min_chars=6, template_df=2), *items)
    assert guard.template_grams > 0
    assert guard.check(_example(f"{stem}\n我告诉姐姐我恨她")) is None  # same stem, new content
    leak = guard.check(_example(f"{stem}\n我从网上盗版音乐。"))
    assert leak is not None and leak.eval_id == "s0"
    # The consent items are nothing but their shared wording: that wording is the item.
    assert guard.check(_example("6.患者自愿签署知情同意书")) is not None


def test_a_multiple_choice_item_is_its_question_with_its_options() -> None:
    question = Example("q1", {"question": "以下哪条评论更具毒性？",
                              "options": {"A": "你这个人真的很烦", "B": "今天天气不错呀"}})
    inputs = list(example_inputs("safetybench", question))
    assert [i.id for i in inputs] == ["q1:question"]
    guard = LeakageGuard(LeakageConfig(ngram=4), inputs)
    assert guard.check(_example("以下哪条评论更具毒性？\nA. 我讨厌下雨天\nB. 祝你好运")) is None
    same = guard.check(_example("以下哪条评论更具毒性？\nA. 你这个人真的很烦\nB. 今天天气不错呀"))
    assert same is not None and same.eval_task == "safetybench"


def test_planted_exam_question_is_caught(data_dir: Path, guard: LeakageGuard) -> None:
    task = make_task("mcq-cmexam")
    item = task.load(data_dir)[100]  # a short stem: its options make the item
    options = " ".join(f"{k}.{v}" for k, v in item.data["options"].items())
    dialogue = _example(f"老师好，我在复习时遇到这道题：{item.data['question']} {options} "
                        "该怎么理解？")
    leak = guard.check(dialogue)
    assert leak is not None and leak.eval_task in {"mcq-cmexam", "mcq-cnmleqa"}
    assert leak.overlap >= 0.5
    assert guard.check(_example("高血压患者平时饮食需要注意什么？")) is None


def test_build_removes_and_reports_a_planted_item(
        data_dir: Path, tmp_path: Path, guard: LeakageGuard, write_mixture) -> None:
    """End to end: a reviewed guideline pair that copies a CBLUE dev sentence."""
    from medgo_trainer.data.sft.build import build_mixture
    from medgo_trainer.data.sft.mixture import load_mixture
    from medgo_trainer.data.sft.review import Candidate, ReviewQueue

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


def test_the_safety_train_side_survives_the_guard(
        data_dir: Path, tmp_path: Path, guard: LeakageGuard, write_mixture) -> None:
    """Only near-duplicates of eval-side items go (CValues' paired prompts such as
    农村/城市孩子…, SafetyBench questions staged twice in other wording): each hits a
    different evaluation item, where a template would hit one item over and over."""
    from medgo_trainer.data.sft.build import build_mixture
    from medgo_trainer.data.sft.mixture import load_mixture

    sheet = build_mixture(load_mixture(write_mixture({"sources": [{"name": "safety"}]})),
                          data_dir, tmp_path / "out", guard=guard)
    assert sheet["per_task"] == {"safety/refusal": 459, "safety/safety-mcq": 1456}
    assert sheet["removed"]["leakage"] == {"safety/safety-mcq ~ safetybench": 5,
                                           "safety/refusal ~ safety": 3}
    leaks = [json.loads(line) for line in (tmp_path / "out/leakage.jsonl").open()]
    assert len({x["eval_id"] for x in leaks}) == len(leaks) == 8
