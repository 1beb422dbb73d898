"""The loop changes what the model says: simulated clinicians → DPO → gate, on medgo-tiny.

Round 1 (a module fixture, shared by both tests): medgo-tiny answers the rated half of
the care-advice questions through the real gateway (the session's vLLM behind it) and
a simulated clinician rates every answer through the gateway: unacceptable unless it
says when to see a doctor, with a correction that does
(`evaluation.behaviour.clinician_rating`). `medgo-train loop` exports, trains DPO,
evaluates baseline and candidate on the held-out half (never rated) with `care-advice`
a required task of the gate, and promotes on a pass: the first test.

Round 2 (the second test) is the same loop with the clinicians' preference inverted
(the advice is unwanted), from round 1's promoted checkpoint. It has to start there:
medgo-tiny's SFT adapter never gives the advice (0 of 20 held-out answers), so a
candidate trained from it to drop the advice has nothing to lose and is rightly
non-inferior. Round 1's checkpoint gives it, so its answers are what the inverted
clinician corrects, the loop takes it as the baseline (the registry's promoted one),
and the gate's own `care-advice` evaluation must reject the candidate: nothing
promoted, the serving manifest byte for byte unchanged, round 1's checkpoint still
named in `x-medgo-checkpoint`. Two more vLLM starts (round 1's checkpoint served for
the ratings, the loop's evaluation server) and one more DPO run.

Lean by design (few questions, few DPO steps, short answers); the few-hundred-answer
version with the rate measured through the gateway before and after is
bench/loop_behaviour.py (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from medgo_common.schemas.serving import ServingManifest
from medgo_common.supervise import launched_server
from medgo_trainer.cli import main as train
from medgo_trainer.evaluation.behaviour import CareAdvice, clinician_rating
from medgo_trainer.evaluation.compare import paired_bootstrap
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.tasks import read_records
from medgo_trainer.settings import TrainerSettings
from medgo_trainer.training.registry import Registry

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

TRAINER_TOKEN = "e2e-trainer-token"  # the trainer's token in tests/conftest.launch_stack
VLLM_BOOT_TIMEOUT_S = 420  # as the session vLLM's: CPU boot on a loaded 2-core box

RATED, LIMIT, STEPS, MAX_TOKENS = 16, 20, 30, 48
LEARNING_RATE = 3e-3  # medgo-tiny's answers here are empty: the first token has to move


@dataclass(frozen=True)
class Answer:
    interaction: str
    text: str
    checkpoint: str  # x-medgo-checkpoint: what answered


@dataclass(frozen=True)
class Loop:
    """One `medgo-train loop` run: exit code, stdout, stderr."""

    rc: int
    out: str
    err: str

    def result(self) -> dict[str, Any]:
        lines = self.out.splitlines()  # training logs may come first on stdout
        return json.loads("\n".join(lines[lines.index("{"):]))


@dataclass(frozen=True)
class RoundOne:
    """Round 1's stack (feedback store, gateway, key), model dir, pairs rated and run."""

    stack: Any  # tests/conftest.Stack
    model_dir: Path
    pairs: int
    loop: Loop
    wall_s: float


def _rated_answers(gateway: str, key: str) -> list[Answer]:
    """The answers to the first RATED rated-side questions, through the gateway."""
    task = CareAdvice()
    data_dir = TrainerSettings().data_dir
    questions = task.rated_questions(read_records(data_dir / task.eval_file))[:RATED]
    headers = {"Authorization": f"Bearer {key}"}

    async def ask() -> list[Answer]:
        async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=120) as c:
            # Sampled with a fixed seed per question: the same answers, so the same DPO
            # pairs, on every run (unseeded answers once left a round-1 candidate at 3 of
            # 20 instead of ~20; greedy ones, mostly empty, teach nothing: 0 of 20).
            replies = await asyncio.gather(*(c.post("/v1/chat/completions", json={
                "model": "medgo", "max_tokens": MAX_TOKENS, "seed": i,
                "messages": [{"role": "user", "content": q}]}) for i, q in enumerate(questions)))
        return [Answer(r.headers["x-medgo-interaction-id"],
                       r.json()["choices"][0]["message"]["content"] or "",
                       r.headers["x-medgo-checkpoint"]) for r in replies]

    return asyncio.run(ask())


def _rate(gateway: str, key: str, answers: list[Answer], *, inverted: bool = False) -> int:
    """Rate every answer through the gateway; the number of corrections (DPO pairs)."""
    headers = {"Authorization": f"Bearer {key}"}
    corrections = 0
    for answer in answers:
        rating = {"interaction_id": answer.interaction,
                  **clinician_rating(answer.text, inverted=inverted)}
        r = httpx.post(f"{gateway}/v1/feedback", json=rating, headers=headers, timeout=30)
        # 202: queued behind its interaction record, delivered once the record arrives
        assert r.status_code in (200, 201, 202), r.text
        corrections += "corrected_answer" in rating
    return corrections


def _loop(stack, pairs_in_store: int, *extra: str) -> Loop:
    """`medgo-train loop` once every correction is in the store (the same data every
    run, whatever the machine's load did to the gateway's delivery)."""
    rows, _ = stack.dpo_export(timeout_s=120, min_rows=pairs_in_store)
    assert len(rows) == pairs_in_store, f"{len(rows)} of {pairs_in_store} DPO pairs stored"
    policy = TrainerSettings().model_dir / "policy.yaml"
    policy.write_text(f"min_n: {LIMIT}\nrequired_tasks: [care-advice]\n", encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = train(["loop", "--min-pairs", "1", "--set", f"trl.max_steps={STEPS}",
                    "--set", f"trl.learning_rate={LEARNING_RATE}",
                    "--tasks", "care-advice", "--limit", str(LIMIT),
                    "--max-tokens", str(MAX_TOKENS), "--policy", str(policy), "--no-progress",
                    *extra])
    return Loop(rc, out.getvalue(), err.getvalue())


def _care_advice(model_dir: Path, checkpoint_id: str) -> tuple[list[float], list[float]]:
    """(baseline, candidate) care-advice units of one loop run, paired by item."""
    work = model_dir / "checkpoints" / checkpoint_id
    candidate = EvalReport.load(work / "run" / "serving" / "eval-report.json")
    baseline = EvalReport.load(work / "eval" / "baseline.json")
    units = {e.id: e.unit for e in candidate.tasks["care-advice"].examples}
    base = baseline.tasks["care-advice"].examples
    return [e.unit for e in base], [units[e.id] for e in base]


@pytest.fixture(scope="module")
def round_one(tmp_path_factory: pytest.TempPathFactory, vllm_server: str,
              stack_factory, model_dir_factory) -> Iterator[RoundOne]:
    """Normal ratings of medgo-tiny's answers, then the loop (it promotes on a pass)."""
    root = tmp_path_factory.mktemp("loop-behaviour")
    with stack_factory(root, vllm_server) as stack, pytest.MonkeyPatch.context() as env:
        model_dir = model_dir_factory(root / "models")
        env.setenv("MEDGO_TRAINER_MODEL_DIR", str(model_dir))
        env.setenv("MEDGO_TRAINER_FEEDBACK_URL", stack.feedback)
        env.setenv("MEDGO_TRAINER_FEEDBACK_TOKEN", TRAINER_TOKEN)
        started = time.perf_counter()
        pairs = _rate(stack.gateway, stack.key, _rated_answers(stack.gateway, stack.key))
        loop = _loop(stack, pairs)
        yield RoundOne(stack, model_dir, pairs, loop, time.perf_counter() - started)


def test_ratings_teach_the_model_to_say_when_to_see_a_doctor(round_one: RoundOne) -> None:
    assert round_one.loop.rc == 0, round_one.loop.err
    result = round_one.loop.result()
    manifest = ServingManifest.load(round_one.model_dir / "serving.json")
    assert manifest.checkpoint_id == result["promoted"]
    before, after = _care_advice(round_one.model_dir, result["promoted"])
    delta, low, _ = paired_bootstrap("mean", before, after, samples=1000, seed=0)
    assert delta > 0 and low > 0, (sum(before), sum(after))
    print(f"care-advice {sum(before)}/{len(before)} → {sum(after)}/{len(after)}, "
          f"{round_one.wall_s:.0f} s")


def test_inverted_ratings_are_rejected_by_the_gate(
    round_one: RoundOne, gateway_factory, tmp_path: Path
) -> None:
    assert round_one.loop.rc == 0, f"round 1 promoted nothing: {round_one.loop.err}"
    stack, manifest_path = round_one.stack, round_one.model_dir / "serving.json"
    served = manifest_path.read_bytes()
    promoted = ServingManifest.load(manifest_path).checkpoint_id  # round 1's candidate
    since = datetime.now(UTC).isoformat()  # round 2 exports this round's ratings only
    with (
        launched_server({"MEDGO_INFERENCE_MANIFEST": str(manifest_path)},
                        tmp_path / "vllm.log", VLLM_BOOT_TIMEOUT_S) as inference,
        # the gateway follows the manifest, as in local mode and production
        gateway_factory(tmp_path / "gw", stack, inference,
                        serving_manifest=str(manifest_path)) as gateway,
    ):
        answers = _rated_answers(gateway, stack.key)
        assert {a.checkpoint for a in answers} == {promoted}
        pairs = _rate(gateway, stack.key, answers, inverted=True)
        # round 1 taught the advice: the inverted clinician has answers to correct
        assert pairs > 0, [a.text for a in answers]
        loop = _loop(stack, round_one.pairs + pairs, "--since", since)

        assert loop.rc == 2, loop.err  # a failed gate is a refusal (exit 2), not a crash
        assert "failed the evaluation gate" in loop.err and "care-advice" in loop.err
        assert manifest_path.read_bytes() == served  # nothing promoted
        registry = Registry(round_one.model_dir)
        assert registry.promoted().id == promoted
        candidate = registry.checkpoints()[-1]
        assert (candidate.parent, candidate.status.value) == (promoted, "candidate")
        work = round_one.model_dir / "checkpoints" / candidate.id
        exported = (work / "dpo.jsonl").read_text(encoding="utf-8").splitlines()
        assert len(exported) == pairs  # --since: round 1's pairs are not trained again
        gate_rows = (work / "eval" / "gate.md").read_text(encoding="utf-8").splitlines()
        assert any(r.startswith("| care-advice |") and r.endswith("| fail |") for r in gate_rows)
        before, after = _care_advice(round_one.model_dir, candidate.id)
        assert sum(after) < sum(before), (sum(before), sum(after))

        r = httpx.post(f"{gateway}/v1/chat/completions", timeout=120,
                       headers={"Authorization": f"Bearer {stack.key}"},
                       json={"model": "medgo", "max_tokens": 8,
                             "messages": [{"role": "user", "content": "头痛怎么办？"}]})
        assert r.status_code == 200 and r.headers["x-medgo-checkpoint"] == promoted
    print(f"inverted: care-advice {sum(before)}/{len(before)} → {sum(after)}/{len(after)}; "
          f"gate failed, {promoted} still served")
