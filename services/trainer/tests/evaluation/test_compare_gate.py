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
    report = make_report({"kuake-qic": ("accuracy", ACC_60 * 2), "safety": ("mean", ACC_60)})
    decision = evaluate_gate(report, report, GatePolicy())
    assert decision.passed, decision.reasons
    assert [v.verdict for v in decision.verdicts] == ["pass", "pass"]


def test_a_candidate_that_only_loses_items_fails_at_n_50(make_report) -> None:
    """The issue's case: N = 50, three items lost and none gained (−6 points). The
    old rule (fail only when the CI's upper end is below −2) passed it: CI [−12, 0]."""
    base_units = [1.0] * 30 + [0.0] * 20
    cand_units = [0.0] * 3 + base_units[3:]
    base = make_report({"kuake-qic": ("accuracy", base_units)})
    cand = make_report({"kuake-qic": ("accuracy", cand_units)})
    decision = evaluate_gate(cand, base, GatePolicy(min_n=50))
    (verdict,) = decision.verdicts
    assert verdict.delta == pytest.approx(-6.0) and verdict.ci_high <= 0.0
    assert verdict.ci_low < -2.0 and verdict.verdict == "fail" and not decision.passed
    assert "may have dropped by more than the margin of 2 points" in decision.reasons[0]
    table = decision.to_markdown()
    assert "| kuake-qic | 60.00 | 54.00 | -6.00 |" in table and "| fail |" in table


def test_non_inferior_candidate_passes_and_margin_is_per_task(make_report) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60 * 3)})
    one_worse = make_report({"kuake-qic": ("accuracy", [0.0, *(ACC_60 * 3)[1:]])})
    assert evaluate_gate(one_worse, base, GatePolicy()).passed  # CI low ≈ −1 > −2
    strict = GatePolicy(task_margins={"kuake-qic": 0.5})
    assert not evaluate_gate(one_worse, base, strict).passed


def test_below_min_n_the_gate_refuses_to_decide(make_report) -> None:
    report = make_report({"kuake-qic": ("accuracy", ACC_60)})  # 100 items
    decision = evaluate_gate(report, report, GatePolicy(min_n=200))
    assert not decision.passed
    assert decision.verdicts[0].verdict == "undecided"
    assert "refuses to decide" in decision.reasons[0] and "min_n 200" in decision.reasons[0]


def test_gate_fails_when_a_baseline_or_required_task_is_missing(make_report) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60), "cmeee": ("accuracy", ACC_60)})
    cand = make_report({"kuake-qic": ("accuracy", ACC_60)})
    decision = evaluate_gate(cand, base, GatePolicy(required_tasks=["care-advice"]))
    assert decision.reasons == [
        "candidate was not evaluated on baseline task(s): cmeee",
        "required task(s) not in both reports: care-advice",
    ]


def test_policy_file_loads_and_rejects_unknown_keys_and_tasks(tmp_path: Path) -> None:
    assert GatePolicy.load(DEFAULT_POLICY) == GatePolicy()
    bad = tmp_path / "bad.yaml"
    bad.write_text("max_drop_pionts: 1\n", encoding="utf-8")
    with pytest.raises(ValueError, match="max_drop_pionts"):
        GatePolicy.load(bad)
    bad.write_text("task_margins: {kuake-qcc: 1}\nrequired_tasks: [cmee]\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown task\\(s\\) cmee, kuake-qcc"):
        GatePolicy.load(bad)


def test_cli_gate_and_compare(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make_report
) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60 * 2)})
    worse = make_report({"kuake-qic": ("accuracy", [0.0] * 30 + (ACC_60 * 2)[30:])})
    base.save(tmp_path / "base.json")
    worse.save(tmp_path / "cand.json")
    args = ["--candidate", str(tmp_path / "cand.json"), "--baseline", str(tmp_path / "base.json")]
    assert main(["gate", *args]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "| kuake-qic | 60.00 | 45.00 | -15.00 |" in out
    assert main(["gate", "--candidate", args[3], "--baseline", args[3]]) == 0
    assert main(["compare", args[1], args[3]]) == 0
    assert "| kuake-qic | accuracy | 60.00 | 45.00 | -15.00 |" in capsys.readouterr().out
    assert main(["gate", *args, "--policy", str(tmp_path / "missing.yaml")]) == 2
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("required_tasks: [nope]\n", encoding="utf-8")
    assert main(["gate", *args, "--policy", str(unknown)]) == 2
    assert "unknown task(s) nope" in capsys.readouterr().err


def test_macro_f1_bootstrap_matches_a_direct_recount() -> None:
    base = [["a", "a"], ["a", "b"], ["b", "b"], ["b", None], ["c", "z"]]
    cand = [["a", "a"], ["a", "a"], ["b", "b"], ["b", "b"], ["c", "c"]]
    delta, low, high = paired_bootstrap("macro_f1", base, cand, samples=200, seed=3)
    # base: a 2/3, b 1/2, c 0, z (predicted only) 0 -> 7/24; candidate perfect -> 1
    assert delta == pytest.approx(100 * (1 - 7 / 24))
    assert low <= delta <= high
    assert paired_bootstrap("macro_f1", base, base, samples=200) == (0.0, 0.0, 0.0)


def test_gate_refuses_reports_run_with_different_settings(make_report) -> None:
    base = make_report({"kuake-qic": ("accuracy", ACC_60)})
    cand = make_report({"kuake-qic": ("accuracy", ACC_60)})
    cand.run.shots = 3
    decision = evaluate_gate(cand, base, GatePolicy())
    assert not decision.passed
    assert decision.reasons == [
        "reports are not comparable: shots is 3 for the candidate but 0 for the baseline"
    ]
