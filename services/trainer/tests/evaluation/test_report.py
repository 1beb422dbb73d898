"""The report in the paper's Table 1 layout: its rows, in order, and its average."""

from __future__ import annotations

import pytest
from medgo_trainer.evaluation.report import NO_DATA, TABLE1


def test_table1_rows_in_order_with_absent_rows_and_no_partial_average(make_report) -> None:
    report = make_report(
        {
            "kuake-qic": ("accuracy", [1.0, 0.0]),
            "cmeee": ("micro_f1", [[1, 1, 1]]),
            "text2dt": ("text2dt", [[1, 1, 2, 2, 2, 1, 1, 1, 0, 1, 1, 1]]),
            "safety": ("mean", [1.0]),
        }
    )
    rows = report.table1_scores()
    assert [title for title, _, _ in rows] == [title for title, _, _ in TABLE1]
    assert len(rows) == 16 and sum(score == NO_DATA for _, _, score in rows) == 7
    scores = dict((title, score) for title, _, score in rows)
    assert scores["CMeEE"] == 100.0 and scores["KUAKE-QIC"] == 50.0
    assert scores["CHIP-CDEE"] == "not run" and scores["KUAKE-IR"] == NO_DATA
    report.run.no_data = ["chip-cdee"]  # what the runner records when its file is absent
    assert report.table1_scores()[3] == ("CHIP-CDEE", "Micro-F1", NO_DATA)
    # Text2DT and the non-CBLUE tasks are not in the average, which needs all 16 rows
    assert report.macro_average == pytest.approx(75.0)
    assert report.table1_average is None
    text = report.to_markdown()
    assert text.index("| CMeEE |") < text.index("| CMeIE |") < text.index("| KUAKE-QIC |")
    assert "| IMCS-V2-NER | Micro-F1 | n/a — no public data | |" in text
    assert "n/a (2 of 16 rows; mean of those: 75.00)" in text
    other = text[text.index("Other tasks") :]
    assert "| text2dt | text2dt | 100.00 | 1 |" in other and "| safety |" in other
    assert "tree_accuracy 100.00; triple_f1 100.00; path_f1 100.00" in other


def test_every_measurable_row_still_gives_no_paper_average(make_report) -> None:
    """Seven rows have no public data at all, so the paper's 16-row average cannot be
    reproduced here; the measured rows' mean is reported under its own name."""
    report = make_report({task: ("accuracy", [1.0]) for _, _, task in TABLE1 if task})
    assert report.table1_average is None and report.macro_average == 100.0
    assert "n/a (9 of 16 rows; mean of those: 100.00)" in report.to_markdown()
