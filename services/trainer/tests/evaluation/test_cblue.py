"""CBLUE answer parsing and per-example scoring, with hand-computed expectations."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_trainer.evaluation.catalog import GROUPS, make_task
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
from medgo_trainer.evaluation.cblue.ner import CMeEE, parse_spans
from medgo_trainer.evaluation.cblue.relations import CMeIE, parse_triples
from medgo_trainer.evaluation.metrics import aggregate
from medgo_trainer.evaluation.tasks import Example, Reply, TaskDataError

# "肺" occurs at 2 and 6; the annotators marked only the second one (as CMeEE does).
NER = Example(
    id="1",
    data={
        "text": "儿童肺部病变，肺内病变较轻",
        "entities": [
            {"start_idx": 2, "end_idx": 3, "type": "bod", "entity": "肺部"},
            {"start_idx": 2, "end_idx": 5, "type": "sym", "entity": "肺部病变"},
            {"start_idx": 7, "end_idx": 7, "type": "bod", "entity": "肺"},
            {"start_idx": 9, "end_idx": 10, "type": "sym", "entity": "病变"},
        ],
    },
)


def test_cmeee_scores_positions_kth_mention_is_kth_occurrence() -> None:
    task = CMeEE()
    # 病变 twice: the 1st mention is the 1st occurrence (4-5, not gold), the 2nd is 9-10
    output = "1. 肺部：身体\n病变：临床表现\n病变：临床表现\n儿童：药物\n心脏：身体\n乱写一通"
    spans = parse_spans(output, NER.data["text"])
    assert (2, 3, "bod") in spans and (4, 5, "sym") in spans and (9, 10, "sym") in spans
    assert ("unplaceable", "心脏", 4) in spans  # not in the sentence: a false positive
    # right: 肺部/bod, 病变@9/sym; predicted 5 distinct; gold 4
    assert task.score(NER, Reply(output)).unit == [2, 5, 4]


def test_cmeee_named_occurrence_and_gold_round_trip() -> None:
    task = CMeEE()
    gold = task.answer(NER)
    assert "肺（第2处）：身体" in gold  # the first "肺" is not an entity
    assert task.score(NER, Reply(gold)).unit == [4, 4, 4]
    # "肺" without the occurrence lands on the first one: wrong position
    assert task.score(NER, Reply("肺：身体")).unit == [0, 1, 4]


def test_cmeee_list_markers_never_change_an_entity() -> None:
    example = Example(
        id="2",
        data={
            "text": "9.阿司匹林100mg",
            "entities": [{"start_idx": 0, "end_idx": 5, "type": "dru", "entity": "9.阿司匹林"}],
        },
    )
    task = CMeEE()
    assert task.score(example, Reply("9.阿司匹林：药物")).unit == [1, 1, 1]
    # a marker the sentence does not contain is a list marker
    assert task.score(example, Reply("1、9.阿司匹林：药物")).unit == [1, 1, 1]
    assert task.score(example, Reply("- 9.阿司匹林：药物")).unit == [1, 1, 1]


def test_cmeee_empty_and_unparseable_output() -> None:
    task = CMeEE()
    assert task.score(NER, Reply("无")).unit == [0, 0, 4]
    assert task.score(NER, Reply("随机的文字，没有格式")).unit == [0, 0, 4]
    assert parse_spans("肺部：未知类型\n肺部:bod", NER.data["text"]) == {(2, 3, "bod")}


@pytest.mark.parametrize("name", [n for n in GROUPS["cblue"] if n != "chip-cdee"])
def test_dev_gold_answers_fed_back_score_exactly_100(name: str, data_dir: Path) -> None:
    """The whole dev (Text2DT: test) file: the gold answer, parsed back, is perfect."""
    task = make_task(name)
    examples = task.load(data_dir)
    units = [task.score(e, Reply(task.answer(e))).unit for e in examples]
    assert aggregate(task.kind, units) == 100.0


def test_missing_field_is_one_clear_error_at_load(tmp_path: Path) -> None:
    target = tmp_path / "cblue" / "CMeEE"
    target.mkdir(parents=True)
    (target / "CMeEE_dev.json").write_text('[{"text": "肺"}]', encoding="utf-8")
    with pytest.raises(TaskDataError, match=r"record 0 lacks field\(s\) entities"):
        CMeEE().load(tmp_path)


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


def test_cdn_splits_on_double_hash_only() -> None:
    example = Example(
        id="1", data={"text": "肾结石，输尿管结石", "normalized_result": "肾结石##输尿管结石"}
    )
    assert parse_terms("卵巢恶性肿瘤##癌## 卵巢恶性肿瘤") == {"卵巢恶性肿瘤", "癌"}
    # an ICD term with a comma inside stays one term
    assert parse_terms("肾结石，输尿管结石##癌") == {"肾结石，输尿管结石", "癌"}
    assert ChipCDN().score(example, Reply("肾结石##膀胱结石")).unit == [1, 2, 2]
    assert ChipCDN().score(example, Reply("肾结石，输尿管结石")).unit == [0, 1, 2]
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
