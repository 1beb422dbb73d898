"""The online canary gate: the statistics against published and hand-computed values,
the rule's verdicts, the endpoint and gauges on a real database, overrides, the CLI."""

from __future__ import annotations

import pytest
from medgo_feedback.cli import main
from medgo_feedback.online_gate import GateRule, Verdict, evaluate, newcombe, wilson, z_value

Z95 = z_value(0.95)
RULE = GateRule(margin=0.05, min_ratings=20, confidence=0.95)
GATE = "/v1/stats/canary-gate"


def test_z_of_a_95_percent_interval() -> None:
    assert abs(Z95 - 1.959964) < 1e-6


def test_wilson_interval_by_hand() -> None:
    # 5/10, z = 1.96: centre (0.5 + 0.19208) / 1.38416 = 0.5,
    # half 1.96 / 1.38416 · sqrt(0.025 + 0.009604) = 0.263411.
    low, high = wilson(5, 10, 1.96)
    assert (low, high) == pytest.approx((0.236589, 0.763411), abs=1e-6)
    # 0/10: the lower bound is 0 (not negative, unlike Wald), the upper 3.8416/13.8416.
    low, high = wilson(0, 10, 1.96)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(3.8416 / 13.8416, abs=1e-6)


@pytest.mark.parametrize(
    ("candidate", "stable", "expected"),
    [
        # Newcombe (1998), Statistics in Medicine 17:873, Table II, method 10.
        ((56, 70), (48, 80), (0.0524, 0.3339)),
        ((9, 10), (3, 10), (0.1705, 0.8090)),
        ((5, 56), (0, 29), (-0.0381, 0.1926)),
        ((0, 10), (0, 20), (-0.1611, 0.2775)),
    ],
)
def test_newcombe_interval_matches_the_paper(candidate, stable, expected) -> None:
    difference, low, high = newcombe(candidate, stable, Z95)
    assert difference == pytest.approx(candidate[0] / candidate[1] - stable[0] / stable[1])
    assert (low, high) == pytest.approx(expected, abs=5e-5)


def test_verdicts_of_the_rule() -> None:
    few = evaluate(stable="s", candidate="c", counts={"s": (9, 10), "c": (10, 10)}, rule=RULE)
    assert (few.verdict, few.passed) == (Verdict.insufficient_ratings, False)
    same = evaluate(stable="s", candidate="c", counts={"s": (900, 1000), "c": (450, 500)},
                    rule=RULE)
    assert same.low > -0.05 and (same.verdict, same.passed) == (Verdict.non_inferior, True)
    worse = evaluate(stable="s", candidate="c", counts={"s": (900, 1000), "c": (400, 500)},
                     rule=RULE)
    assert worse.high < 0 and (worse.verdict, worse.passed) == (Verdict.not_shown, False)
    # Equal rates but too few ratings for a narrow interval: not shown, not a pass.
    unsure = evaluate(stable="s", candidate="c", counts={"s": (18, 20), "c": (18, 20)},
                      rule=RULE)
    assert unsure.low < -0.05 and unsure.verdict is Verdict.not_shown
    overridden = evaluate(stable="s", candidate="c", counts={}, rule=RULE,
                          override_reason="reviewed by the ward")
    assert overridden.stable.acceptance_rate is None and overridden.passed


def _seed(client, make_record, make_rating, checkpoint: str, accepted: int, rejected: int):
    records = [make_record(checkpoint_id=checkpoint) for _ in range(accepted + rejected)]
    assert client.post("/v1/interactions", json={"records": records}).status_code == 201
    for i, record in enumerate(records):
        verdict = "acceptable" if i < accepted else "unacceptable"
        r = client.post("/v1/ratings", json=make_rating(record["id"], verdict=verdict))
        assert r.status_code == 201, r.text


def test_endpoint_gauges_and_override(client, make_record, make_rating) -> None:
    _seed(client, make_record, make_rating, "stable-ckpt", 18, 2)
    _seed(client, make_record, make_rating, "canary-ckpt", 10, 2)
    params = {"stable": "stable-ckpt", "candidate": "canary-ckpt", "min_ratings": 10}
    body = client.get(GATE, params=params).json()
    assert (body["stable"]["ratings"], body["stable"]["acceptable"]) == (20, 18)
    assert (body["candidate"]["ratings"], body["candidate"]["acceptable"]) == (12, 10)
    expected = newcombe((10, 12), (18, 20), Z95)
    assert (body["difference"], body["low"], body["high"]) == pytest.approx(expected)
    assert (body["verdict"], body["passed"]) == ("not_shown", False)
    assert body["method"].startswith("newcombe")
    metrics = client.get("/metrics").text
    assert 'medgo_feedback_gate_passed{candidate="canary-ckpt",stable="stable-ckpt"} 0.0' in metrics
    assert 'medgo_feedback_gate_ratings{arm="candidate",checkpoint="canary-ckpt"} 12.0' in metrics

    r = client.post(GATE + "/overrides", json={
        "stable": "stable-ckpt", "candidate": "canary-ckpt", "actor": "dr-li",
        "reason": "ward review: the rejected answers predate the guideline fix",
    })
    assert r.status_code == 201, r.text
    assert r.json()["actor"] == "dr-li (via gateway)"
    after = client.get(GATE, params=params).json()
    assert after["passed"] and after["verdict"] == "not_shown"
    assert after["override_reason"].startswith("ward review")


@pytest.mark.parametrize(
    "params",
    [{"stable": "a"}, {"stable": "a", "candidate": "b", "margin": 2},
     {"stable": "a", "candidate": "b", "confidence": 1}],
)
def test_bad_gate_queries_are_refused(client, params) -> None:
    r = client.get(GATE, params=params)
    assert r.status_code == 422 and r.json()["error"]["type"] == "invalid_request_error"


def test_override_needs_a_reason(client) -> None:
    r = client.post(GATE + "/overrides",
                    json={"stable": "a", "candidate": "b", "actor": "x", "reason": ""})
    assert r.status_code == 422
    after = client.get(GATE, params={"stable": "a", "candidate": "b"}).json()
    assert after["override_reason"] is None and not after["passed"]


def test_cli_exit_code_follows_the_gate(monkeypatch, settings, client, make_record,
                                        make_rating, capsys) -> None:
    monkeypatch.setenv("MEDGO_FEEDBACK_DATABASE_URL", settings.database_url)
    _seed(client, make_record, make_rating, "stable-ckpt", 20, 0)
    _seed(client, make_record, make_rating, "canary-ckpt", 20, 0)
    argv = ["canary-gate", "--stable", "stable-ckpt", "--candidate", "canary-ckpt"]
    assert main([*argv, "--min-ratings", "20", "--margin", "0.2"]) == 0
    assert "PASS" in capsys.readouterr().out
    assert main(argv) == 1  # the default rule wants 200 ratings per arm
    assert "insufficient_ratings" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--actor"):
        main([*argv, "--override", "because"])
    assert main([*argv, "--override", "urgent fix, reviewed", "--actor", "ops-wang"]) == 0
    assert main(argv) == 0  # the override is recorded
    assert "overridden: urgent fix, reviewed" in capsys.readouterr().out
