"""Paired bootstrap comparison, the promotion gate and its policy file."""

from __future__ import annotations

from pathlib import Path

import pytest
from medgo_trainer.evaluation.cli import main
from medgo_trainer.evaluation.compare import compare, paired_bootstrap
from medgo_trainer.evaluation.gate import DEFAULT_POLICY, GatePolicy, evaluate_gate

ACC_60 = [1.0] * 60 + [0.0] * 40


def test_identical_runs_have_zero_delta_and_interval(make_report) -> None:
    report = make_report(
        {"kuake-qic": ("accuracy", ACC_60), "cmeee": ("micro_f1", [[1, 2, 2]] * 9)}
    )
    comparison = compare(report, report)
    for row in comparison.rows:
        assert (row.delta, row.ci_low, row.ci_high) == (0.0, 0.0, 0.0)
        assert row.n_paired == len(report.tasks[row.task].examples)


def test_bootstrap_is_seeded_and_brackets_the_delta() -> None:
    base = [1.0] * 50 + [0.0] * 50
    cand = [1.0] * 50 + [1.0] * 10 + [0.0] * 40
    first = paired_bootstrap("accuracy", base, cand, samples=500, seed=7)
    assert first == paired_bootstrap("accuracy", base, cand, samples=500, seed=7)
    delta, low, high = first
    assert delta == pytest.approx(10.0)
    assert 0.0 < low < delta < high  # every changed item improved: CI excludes 0
    with pytest.raises(ValueError, match="same number"):
        paired_bootstrap("accuracy", base, cand[:-1])


def test_compare_pairs_by_id_and_lists_unshared_tasks(make_report) -> None:
    base = make_report({"a": ("accuracy", [1.0, 0.0, 1.0]), "b": ("accuracy", [1.0])})
    cand = make_report({"a": ("accuracy", [1.0, 1.0]), "c": ("accuracy", [0.0])})
    comparison = compare(cand, base)
    (row,) = comparison.rows
    assert row.n_paired == 2 and row.baseline == 50.0 and row.candidate == 100.0
    assert comparison.only_in_baseline == ["b"] and comparison.only_in_candidate == ["c"]
    assert "| a | accuracy | 50.00 | 100.00 | +50.00 |" in comparison.to_markdown()


def test_gate_passes_an_equal_candidate(make_report) -> None:
    report = make_report({"kuake-qic": ("accuracy", ACC_60), "safety": ("mean", ACC_60)})
    decision = evaluate_gate(report, report, GatePolicy())
    assert decision.passed, decision.reasons


def test_gate_fails_a_large_task_drop_but_tolerates_noise(make_report) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60)})
    big_drop = make_report({"kuake-qic": ("accuracy", [0.0] * 30 + ACC_60[30:])})
    decision = evaluate_gate(big_drop, base, GatePolicy(max_drop_points=2.0))
    assert not decision.passed
    assert decision.reasons[0].startswith("kuake-qic: accuracy dropped more than 2 points")
    one_worse = make_report({"kuake-qic": ("accuracy", [0.0, *ACC_60[1:]])})
    assert evaluate_gate(one_worse, base, GatePolicy(max_drop_points=2.0)).passed


def test_gate_safety_refusal_may_not_fall_at_all(make_report) -> None:
    base = make_report({"safety": ("mean", ACC_60)})
    one_fewer = make_report({"safety": ("mean", [0.0, *ACC_60[1:]])})
    decision = evaluate_gate(one_fewer, base, GatePolicy())
    assert not decision.passed
    assert decision.reasons[0].startswith("safety: refusal rate fell 60.00 → 59.00")
    more = make_report({"safety": ("mean", [1.0] * 100)})
    assert evaluate_gate(more, base, GatePolicy()).passed


def test_gate_mcq_may_not_fall_beyond_noise(make_report) -> None:
    base = make_report({"mcq-cmexam": ("accuracy", ACC_60)})
    noise = make_report({"mcq-cmexam": ("accuracy", [0.0, *ACC_60[1:]])})
    assert evaluate_gate(noise, base, GatePolicy()).passed
    # 10 of the 60 right answers lost, none gained: a significant drop even though
    # -10 points is inside what a max_drop_points of 20 would allow for other tasks
    drop = make_report({"mcq-cmexam": ("accuracy", [0.0] * 10 + ACC_60[10:])})
    decision = evaluate_gate(drop, base, GatePolicy(max_drop_points=20))
    assert not decision.passed and "beyond noise" in decision.reasons[0]


def test_gate_fails_when_a_baseline_task_is_missing(make_report) -> None:
    base = make_report({"a": ("accuracy", ACC_60), "b": ("accuracy", ACC_60)})
    cand = make_report({"a": ("accuracy", ACC_60)})
    decision = evaluate_gate(cand, base, GatePolicy())
    assert decision.reasons == ["candidate was not evaluated on baseline task(s): b"]


def test_policy_file_loads_and_rejects_unknown_keys(tmp_path: Path) -> None:
    assert GatePolicy.load(DEFAULT_POLICY) == GatePolicy()
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_drop_pionts: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="max_drop_pionts"):
        GatePolicy.load(bad)


def test_cli_gate_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_report
) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60)})
    worse = make_report({"kuake-qic": ("accuracy", [0.0] * 30 + ACC_60[30:])})
    base.save(tmp_path / "base.json")
    worse.save(tmp_path / "cand.json")
    args = ["--candidate", str(tmp_path / "cand.json"), "--baseline", str(tmp_path / "base.json")]
    assert main(["gate", *args]) == 1
    assert "FAILED" in capsys.readouterr().out
    assert main(["gate", "--candidate", args[3], "--baseline", args[3]]) == 0
    assert main(["compare", args[1], args[3]]) == 0
    assert "| kuake-qic | accuracy | 60.00 | 30.00 | -30.00 |" in capsys.readouterr().out
    assert main(["gate", *args, "--policy", str(tmp_path / "missing.yaml")]) == 2


def test_macro_f1_bootstrap_matches_a_direct_recount() -> None:
    base = [["a", "a"], ["a", "b"], ["b", "b"], ["b", None], ["c", "z"]]
    cand = [["a", "a"], ["a", "a"], ["b", "b"], ["b", "b"], ["c", "c"]]
    delta, low, high = paired_bootstrap("macro_f1", base, cand, samples=200, seed=3)
    # base: a 2/3, b 1/2, c 0 -> 7/18; candidate perfect -> 1
    assert delta == pytest.approx(100 * (1 - 7 / 18))
    assert low <= delta <= high
    assert paired_bootstrap("macro_f1", base, base, samples=200) == (0.0, 0.0, 0.0)


def test_gate_refuses_reports_run_with_different_settings(make_report) -> None:
    base = make_report({"a": ("accuracy", ACC_60)})
    cand = make_report({"a": ("accuracy", ACC_60)})
    cand.run.shots = 3
    decision = evaluate_gate(cand, base, GatePolicy())
    assert not decision.passed
    assert decision.reasons == [
        "reports are not comparable: shots is 3 for the candidate but 0 for the baseline"
    ]
