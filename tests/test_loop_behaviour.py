"""The loop changes what the model says: simulated clinicians → DPO → gate, on medgo-tiny.

medgo-tiny answers the rated half of the care-advice questions through the real
gateway (the session's vLLM behind it) and a simulated clinician rates every answer
through the gateway: unacceptable unless it says when to see a doctor, with a
correction that does (`evaluation.behaviour.clinician_rating`). `medgo-train loop`
exports, trains DPO, evaluates baseline and candidate on the held-out half (never
rated) with `care-advice` a required task of the gate, and promotes on a pass.

Lean by design (few questions, few DPO steps, short answers); the few-hundred-answer
version with the rate measured through the gateway before and after is
bench/loop_behaviour.py (figures in docs/benchmarks.md).

Inverted ratings are not exercised here: medgo-tiny's SFT adapter never gives the
advice (0 of 50 held-out answers), so a candidate trained to drop it has nothing to
lose and is rightly non-inferior. Rejecting it needs a baseline that has the
behaviour — a second round after this one (serve the promoted adapter, rate inverted,
loop again), four vLLM starts in all; the gate's side of it (a required task that
falls beyond the margin fails) is covered in services/trainer/tests/evaluation.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_trainer.cli import main as train
from medgo_trainer.evaluation.behaviour import CareAdvice, clinician_rating
from medgo_trainer.evaluation.compare import paired_bootstrap
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.tasks import read_records
from medgo_trainer.settings import TrainerSettings

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TRAINER_TOKEN = "e2e-trainer-token"  # the trainer's token in tests/conftest.launch_stack

RATED, LIMIT, STEPS, MAX_TOKENS = 16, 20, 30, 48
LEARNING_RATE = 3e-3  # medgo-tiny's answers here are empty: the first token has to move


def _rated_answers(stack) -> list[tuple[str, str]]:
    """(interaction id, answer) for the first RATED rated-side questions, via the gateway."""
    task = CareAdvice()
    data_dir = TrainerSettings().data_dir
    questions = task.rated_questions(read_records(data_dir / task.eval_file))[:RATED]
    headers = {"Authorization": f"Bearer {stack.key}"}

    async def ask() -> list[tuple[str, str]]:
        async with httpx.AsyncClient(base_url=stack.gateway, headers=headers, timeout=120) as c:
            replies = await asyncio.gather(*(c.post("/v1/chat/completions", json={
                "model": "medgo", "max_tokens": MAX_TOKENS,
                "messages": [{"role": "user", "content": q}]}) for q in questions))
        return [(r.headers["x-medgo-interaction-id"], r.json()["choices"][0]["message"]["content"])
                for r in replies]

    return asyncio.run(ask())


def _rate(stack, answers: list[tuple[str, str]]) -> int:
    """Rate every answer through the gateway; the number of corrections (DPO pairs)."""
    headers = {"Authorization": f"Bearer {stack.key}"}
    corrections = 0
    for interaction, answer in answers:
        rating = {"interaction_id": interaction, **clinician_rating(answer)}
        r = httpx.post(f"{stack.gateway}/v1/feedback", json=rating, headers=headers, timeout=30)
        # 202: queued behind its interaction record, delivered once the record arrives
        assert r.status_code in (200, 201, 202), r.text
        corrections += "corrected_answer" in rating
    return corrections


def _loop(stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          capsys: pytest.CaptureFixture[str], pairs: int) -> tuple[int, str, str]:
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_URL", stack.feedback)
    monkeypatch.setenv("MEDGO_TRAINER_FEEDBACK_TOKEN", TRAINER_TOKEN)
    # every correction must be in the store before the loop exports (the same data
    # every run, whatever the machine's load did to the gateway's delivery)
    rows, _ = stack.dpo_export(timeout_s=120, min_rows=pairs)
    assert len(rows) == pairs, f"{len(rows)} of {pairs} DPO pairs reached the feedback store"
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"min_n: {LIMIT}\nrequired_tasks: [care-advice]\n", encoding="utf-8")
    rc = train(["loop", "--min-pairs", "1", "--set", f"trl.max_steps={STEPS}",
                "--set", f"trl.learning_rate={LEARNING_RATE}",
                "--tasks", "care-advice", "--limit", str(LIMIT), "--max-tokens", str(MAX_TOKENS),
                "--policy", str(policy), "--no-progress"])
    out, err = capsys.readouterr()
    return rc, out, err


def _care_advice(model_dir: Path) -> tuple[list[float], list[float]]:
    """(baseline, candidate) care-advice units, paired by item, from the loop's reports."""
    (work,) = (model_dir / "checkpoints").iterdir()
    candidate = EvalReport.load(work / "run" / "serving" / "eval-report.json")
    baseline = EvalReport.load(work / "eval" / "baseline.json")
    units = {e.id: e.unit for e in candidate.tasks["care-advice"].examples}
    base = baseline.tasks["care-advice"].examples
    return [e.unit for e in base], [units[e.id] for e in base]


def test_ratings_teach_the_model_to_say_when_to_see_a_doctor(
    stack, model_dir: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    started = time.perf_counter()
    pairs = _rate(stack, _rated_answers(stack))
    rc, out, err = _loop(stack, tmp_path, monkeypatch, capsys, pairs)
    assert rc == 0, err
    lines = out.splitlines()  # training logs may come first on stdout
    result = json.loads("\n".join(lines[lines.index("{"):]))
    assert ServingManifest.load(model_dir / "serving.json").checkpoint_id == result["promoted"]
    before, after = _care_advice(model_dir)
    delta, low, _ = paired_bootstrap("mean", before, after, samples=1000, seed=0)
    assert delta > 0 and low > 0, (sum(before), sum(after))
    print(f"care-advice {sum(before)}/{len(before)} → {sum(after)}/{len(after)}, "
          f"{time.perf_counter() - started:.0f} s")
