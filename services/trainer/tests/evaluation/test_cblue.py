"""CBLUE answer parsing and per-example scoring, with hand-computed expectations."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_trainer.evaluation.cblue.cdee import ChipCDEE, parse_events
from medgo_trainer.evaluation.cblue.cdn import ChipCDN, parse_terms
from medgo_trainer.evaluation.cblue.classification import (
    ChipCTC,
    ChipSTS,
    KuakeQIC,
    KuakeQQR,
    KuakeQTR,
    pick_label,
)
from medgo_trainer.evaluation.cblue.ner import CMeEE, parse_entities
from medgo_trainer.evaluation.cblue.relations import CMeIE, Text2DT, parse_triples
from medgo_trainer.evaluation.metrics import aggregate
from medgo_trainer.evaluation.tasks import Example, Reply

NER = Example(
    id="1",
    data={
        "text": "儿童肺部病变较轻",
        "entities": [
            {"start_idx": 2, "end_idx": 3, "type": "bod", "entity": "肺部"},
            {"start_idx": 2, "end_idx": 5, "type": "sym", "entity": "肺部病变"},
        ],
    },
)


def test_cmeee_partial_match_duplicates_and_wrong_type() -> None:
    task = CMeEE()
    output = "1. 肺部：身体\n2. 肺部：身体\n3. 病变：临床表现\n4. 儿童：药物\n5. 乱写一通"
    scored = task.score(NER, Reply(output))
    # {肺部/bod (right), 病变/sym (partial span = wrong), 儿童/dru (wrong)}; dup once
    assert scored.unit == [1, 3, 2]
    assert aggregate("micro_f1", [scored.unit]) == pytest.approx(
        100 * 2 * (1 / 3) * (1 / 2) / (5 / 6)
    )


def test_cmeee_empty_and_unparseable_output() -> None:
    task = CMeEE()
    assert task.score(NER, Reply("无")).unit == [0, 0, 2]
    assert task.score(NER, Reply("随机的文字，没有格式")).unit == [0, 0, 2]
    assert parse_entities("肺部：未知类型\n肺部:bod") == {("肺部", "bod")}


def test_cmeee_gold_answer_scores_full_marks() -> None:
    task = CMeEE()
    scored = task.score(NER, Reply(task.answer(NER)))
    assert aggregate("micro_f1", [scored.unit]) == 100.0


def test_cmeie_triples() -> None:
    example = Example(
        id="1",
        data={
            "text": "急性胰腺炎@早期 ERCP 可以降低并发症",
            "spo_list": [
                {"subject": "急性胰腺炎", "predicate": "影像学检查", "object": {"@value": "ERCP"}},
                {"subject": "急性胰腺炎", "predicate": "并发症", "object": {"@value": "梗阻"}},
            ],
        },
    )
    output = (
        "急性胰腺炎|影像学检查|ERCP\n急性胰腺炎 ｜ 影像学检查 ｜ ERCP\n"
        "急性胰腺炎|并发症\n胰腺炎|并发症|梗阻"
    )
    scored = CMeIE().score(example, Reply(output))
    assert scored.unit == [1, 2, 2]  # dup counted once, 2-field line dropped, wrong subject
    assert parse_triples("无") == set()
    assert "主题：急性胰腺炎" in CMeIE().prompt(example)


def test_text2dt_scores_every_tree_triple() -> None:
    example = Example(
        id="1",
        data={
            "text": "糖尿病患者@轻度脱水者口服生理盐水",
            "tree": [
                {"role": "C", "triples": [["患者", "临床表现", "轻度脱水"]], "logical_rel": "null"},
                {"role": "D", "triples": [["患者", "治疗药物", "生理盐水"]], "logical_rel": "null"},
            ],
        },
    )
    assert Text2DT().score(example, Reply("患者|治疗药物|生理盐水")).unit == [1, 1, 2]


def test_cdn_pairs() -> None:
    example = Example(id="1", data={"text": "卵巢Ca", "normalized_result": "卵巢恶性肿瘤##癌"})
    assert parse_terms("卵巢恶性肿瘤##癌##卵巢恶性肿瘤。") == {"卵巢恶性肿瘤", "癌"}
    assert ChipCDN().score(example, Reply("卵巢恶性肿瘤\n卵巢囊肿")).unit == [1, 2, 2]
    assert ChipCDN().score(example, Reply("无")).unit == [0, 0, 2]


def test_cdee_quadruples_order_free_words() -> None:
    example = Example(
        id="1",
        data={
            "text": "患者无发热，右下腹压痛明显",
            "event": [
                {"core_name": "发热", "tendency": "否定", "character": [], "anatomy_list": []},
                {
                    "core_name": "压痛",
                    "tendency": "",
                    "character": ["明显"],
                    "anatomy_list": ["右下腹"],
                },
            ],
        },
    )
    task = ChipCDEE()
    output = "发热|否定|无|无\n压痛|发生|明显|右下腹\n压痛|发生|明显|无\n疼痛|可能|无|无"
    # 2 right, the third misses anatomy (wrong), the fourth has an unknown tendency (dropped)
    assert task.score(example, Reply(output)).unit == [2, 3, 2]
    assert parse_events("压痛|发生|剧烈,明显|右下腹") == parse_events("压痛|发生|明显、剧烈|右下腹")
    assert task.score(example, Reply("发热|否定|无|无\n发热|否定|无|无")).unit == [1, 1, 2]
    assert task.score(example, Reply("无")).unit == [0, 0, 2]
    assert task.score(example, Reply(task.answer(example))).unit == [2, 2, 2]


def test_pick_label_prefers_earliest_then_longest() -> None:
    names = {"3": "完全匹配", "2": "部分匹配", "1": "少量匹配", "0": "不匹配"}
    assert pick_label("答案：部分匹配，不是完全匹配", names) == "2"
    assert pick_label("3", names) == "3"
    assert pick_label("结果是3分", names) is None  # digits inside text are not labels
    assert pick_label("", names) is None
    qqr = KuakeQQR.labels
    assert pick_label("语义完全相同", qqr) == "2"


@pytest.mark.parametrize("task_cls", [ChipCTC, ChipSTS, KuakeQIC, KuakeQTR, KuakeQQR])
def test_label_tasks_round_trip_gold_answers(task_cls: type, data_dir: Path) -> None:
    """On real dev items the gold answer's wording parses back to the gold label."""
    task = task_cls()
    examples = task.load(data_dir)[:50]
    units = [task.score(e, Reply(task.answer(e))).unit for e in examples]
    assert aggregate(task.kind, units) == 100.0
    assert aggregate(task.kind, [task.score(e, Reply("看不懂")).unit for e in examples]) == 0.0
