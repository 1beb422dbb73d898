"""Text2DT's five official figures on hand-built trees, and its answer format."""

from __future__ import annotations

import pytest
from medgo_trainer.evaluation.cblue.text2dt import (
    TREE_COUNTS,
    Text2DT,
    gold_tree,
    parse_tree,
    render_tree,
    tree_unit,
)
from medgo_trainer.evaluation.metrics import aggregate, all_scores
from medgo_trainer.evaluation.tasks import Example, Reply

T1 = ["患者", "临床表现", "轻度脱水"]
T2 = ["患者", "治疗药物", "生理盐水"]
T3 = ["患者", "治疗方案", "补液"]
EXAMPLE = Example(
    id="1",
    data={
        "text": "糖尿病患者@轻度脱水者口服生理盐水，否则静脉补液",
        "tree": [
            {"role": "C", "triples": [T1], "logical_rel": "null"},
            {"role": "D", "triples": [T2], "logical_rel": "null"},
            {"role": "D", "triples": [T3], "logical_rel": "null"},
        ],
    },
)


def test_one_wrong_leaf() -> None:
    # yes-branch right, no-branch decision empty
    predicted = parse_tree("条件：患者|临床表现|轻度脱水\n决策：患者|治疗药物|生理盐水\n决策：无")
    unit = tree_unit(predicted, gold_tree(EXAMPLE))
    assert dict(zip(TREE_COUNTS, unit, strict=True)) == {
        "tree_correct": 0, "trees": 1,
        "triple_tp": 2, "triple_pred": 2, "triple_gold": 3,
        "path_tp": 1, "path_pred": 2, "path_gold": 2,
        "edit_distance": 1,  # the empty leaf lacks one triple
        "node_tp": 2, "node_pred": 2, "node_gold": 3,
    }  # fmt: skip


def test_a_leaf_where_the_gold_has_a_condition() -> None:
    predicted = parse_tree("决策：患者|治疗药物|生理盐水")
    unit = tree_unit(predicted, gold_tree(EXAMPLE))
    # root: role differs 1 + triples {T2} vs {T1} 2 = 3; the gold's two leaves count
    # against nothing: (2 + 1) each -> 9
    assert unit == [0, 1, 1, 1, 3, 0, 1, 2, 9, 1, 1, 3]
    scores = all_scores("text2dt", [unit])
    assert scores["triple_f1"] == pytest.approx(100 * 2 * 1 * (1 / 3) / (1 + 1 / 3))
    assert scores["edit_distance"] == 9.0 and scores["path_f1"] == 0.0


def test_gold_round_trip_and_repairs() -> None:
    task = Text2DT()
    gold_text = task.answer(EXAMPLE)
    assert gold_text.splitlines()[0] == "条件：患者|临床表现|轻度脱水"
    unit = task.score(EXAMPLE, Reply(gold_text)).unit
    assert aggregate("text2dt", [unit]) == 100.0
    assert all_scores("text2dt", [unit])["edit_distance"] == 0.0
    # a condition with no branches is completed with empty decisions; extra lines dropped
    cut = parse_tree("条件：患者|临床表现|轻度脱水")
    assert cut is not None and render_tree(cut).splitlines() == [
        "条件：患者|临床表现|轻度脱水", "决策：无", "决策：无"
    ]
    extra = parse_tree("决策：无\n决策：患者|治疗药物|生理盐水")
    assert extra is not None and render_tree(extra) == "决策：无"
    # no node line at all: scored as an empty decision, still counted as a tree
    assert task.score(EXAMPLE, Reply("不知道")).unit[:2] == [0, 1]
