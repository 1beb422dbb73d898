"""Does the feedback loop change what the model says? Simulated clinicians, measured.

    .venv/bin/python bench/loop_behaviour.py                     # docs figures (≈ 10 min)
    .venv/bin/python bench/loop_behaviour.py --samples 3 --limit 200 --min-n 100  # bigger
    .venv/bin/python bench/loop_behaviour.py --inverted          # the opposite policy

The defaults are the end-to-end test's training settings (DPO 30 steps at 3e-3, answers
capped at 48 tokens) on every question: one answer rated per rated question, the whole
held-out half measured; they fit in about ten minutes on the shared 2-core box. (The
first run, with 3 answers per question and 40 steps, outlived a 30-minute timeout on
a saturated machine.)

1. medgo-tiny (its SFT adapter, served by our launcher) answers the *rated* half of
   Huatuo's benchmark questions through the real gateway, ``--samples`` answers per
   question (temperature 0.8), and a simulated clinician rates each through the
   gateway's ``/v1/feedback``: unacceptable unless it says when to see a doctor, with
   a corrected answer that does (`evaluation.behaviour.clinician_rating`;
   ``--inverted`` rates the opposite). The loop starts once every correction is in the
   feedback store (the gateway delivers interaction records asynchronously).
2. The behaviour's rate on the *held-out* half (never rated) is measured through the
   gateway, greedy, from the checkpoint the gateway names in ``x-medgo-checkpoint``.
3. ``medgo-train loop`` exports the ratings, trains DPO, evaluates baseline and
   candidate on ``care-advice`` (the held-out half) plus KUAKE-QIC, gates and promotes.
4. Inference and gateway are restarted on the manifest the loop wrote and the
   held-out rate is measured again; the rise is a paired bootstrap over the questions.

Prints the rate before/after with its 95% CI, the gate's verdict, the loop's wall
time by step and the machine's load average (the box is shared). Everything lives in
a temporary copy of medgo-tiny. (``--inverted`` from medgo-tiny's SFT adapter shows
nothing: it never gives the advice, so there is nothing to lose; the gate rejecting
an inverted round after a normal one is tests/test_loop_behaviour.py's second test.)
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import itertools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from medgo_common.paths import default_model_dir
from medgo_common.schemas.serving import ServingManifest
from medgo_common.supervise import free_port, launched_process, launched_server, wait_http_ok
from medgo_trainer.evaluation.behaviour import (
    CareAdvice,
    clinician_rating,
    says_when_to_see_a_doctor,
)
from medgo_trainer.evaluation.compare import paired_bootstrap
from medgo_trainer.evaluation.tasks import read_records
from medgo_trainer.settings import TrainerSettings

BIN = Path(sys.executable).parent
GATEWAY_TOKEN, TRAINER_TOKEN = "bench-gateway-token", "bench-trainer-token"
BOOT_S, VLLM_BOOT_S = 90, 600
# The loop logs "loop [n/6]" when step n is done (3: when training starts), so the
# time up to each mark is the work it closes.
STEP_NAMES = {
    "loop [1/6]": "1 export DPO pairs",
    "loop [2/6]": "2 baseline (adopt the served adapter)",
    "loop [3/6]": "3 DPO recipe and data hash",
    "loop [4/6]": "3-4 train DPO + register",
    "loop [5/6]": "5 evaluate both (temporary vLLM)",
    "loop [6/6]": "6 gate + promote",
}


@contextmanager
def _service(cmd: str, env: dict[str, str], url: str, log: Path) -> Iterator[None]:
    ready = functools.partial(wait_http_ok, url + "/readyz", BOOT_S)
    with launched_process([str(BIN / cmd)], os.environ | env, log, ready):
        yield


@contextmanager
def serving(work: Path, manifest: Path, feedback: str, keys: Path, tag: str) -> Iterator[str]:
    """vLLM on ``manifest`` and a gateway in front of it; yields the gateway URL."""
    with launched_server({"MEDGO_INFERENCE_MANIFEST": str(manifest)},
                         work / f"vllm-{tag}.log", VLLM_BOOT_S) as inference:
        port = free_port()
        env = {"MEDGO_GATEWAY_PORT": str(port), "MEDGO_GATEWAY_INFERENCE_URL": inference,
               "MEDGO_GATEWAY_FEEDBACK_URL": feedback,
               "MEDGO_GATEWAY_FEEDBACK_TOKEN": GATEWAY_TOKEN,
               "MEDGO_GATEWAY_LOCAL_MODE": "true",  # the bench token is short
               "MEDGO_GATEWAY_API_KEYS_FILE": str(keys),
               "MEDGO_GATEWAY_SPOOL_PATH": str(work / f"spool-{tag}.sqlite3")}
        url = f"http://127.0.0.1:{port}"
        with _service("medgo-gateway", env, url, work / f"gw-{tag}.log"):
            yield url


async def _answers(gateway: str, key: str, questions: list[str], max_tokens: int,
                   temperature: float) -> list[tuple[str, str, str]]:
    """(question, answer, interaction id) per question, 4 in flight."""
    limit = asyncio.Semaphore(4)
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway, headers=headers, timeout=300) as http:

        async def one(question: str) -> tuple[str, str, str]:
            async with limit:
                r = await http.post("/v1/chat/completions", json={
                    "model": "medgo", "max_tokens": max_tokens, "temperature": temperature,
                    "messages": [{"role": "user", "content": question}]})
            r.raise_for_status()
            return (question, r.json()["choices"][0]["message"]["content"] or "",
                    r.headers["x-medgo-interaction-id"] + "|" + r.headers["x-medgo-checkpoint"])

        return await asyncio.gather(*(one(q) for q in questions))


def held_out_rate(gateway: str, key: str, questions: list[str],
                  max_tokens: int) -> tuple[list[float], str]:
    """The behaviour per held-out question (greedy) and the checkpoint that answered."""
    rows = asyncio.run(_answers(gateway, key, questions, max_tokens, 0.0))
    checkpoints = {ids.split("|")[1] for _, _, ids in rows}
    assert len(checkpoints) == 1, checkpoints
    return [float(says_when_to_see_a_doctor(a)) for _, a, _ in rows], checkpoints.pop()


def rate(gateway: str, key: str, rows: list[tuple[str, str, str]], inverted: bool) -> int:
    """Each answer rated through the gateway; returns how many were unacceptable."""
    unacceptable = 0
    with httpx.Client(base_url=gateway, headers={"Authorization": f"Bearer {key}"},
                      timeout=60) as http:
        for _, answer, ids in rows:
            rating = clinician_rating(answer, inverted=inverted)
            unacceptable += rating["verdict"] == "unacceptable"
            r = http.post("/v1/feedback", json={"interaction_id": ids.split("|")[0], **rating})
            assert r.status_code in (200, 201, 202), r.text
    return unacceptable


def wait_for_pairs(feedback: str, pairs: int, timeout_s: float = 300) -> int:
    """Poll the DPO export until it holds ``pairs`` rows (or time is up); returns how
    many it holds: a rating can be queued (202) behind its interaction record."""
    headers = {"Authorization": f"Bearer {TRAINER_TOKEN}"}
    deadline = time.monotonic() + timeout_s
    while True:
        text = httpx.get(f"{feedback}/v1/exports/dpo", headers=headers, timeout=60).text
        rows = sum(1 for line in text.splitlines() if line.strip())
        if rows >= pairs or time.monotonic() > deadline:
            return rows
        time.sleep(0.5)


def _load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


class StepClock(logging.Handler):
    """Times each `loop [n/6]` step from the loop's own log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.marks: list[tuple[str, float]] = [("start", time.perf_counter())]

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("loop ["):
            self.marks.append((message.split("]")[0] + "]", time.perf_counter()))


def run_loop(args: argparse.Namespace, work: Path, feedback: str, pairs: int) -> tuple[int, list]:
    from medgo_trainer.cli import main as train

    policy = work / "policy.yaml"
    policy.write_text(f"min_n: {args.min_n}\nmargin_points: {args.margin}\n"
                      "required_tasks: [care-advice]\n", encoding="utf-8")
    clock = StepClock()
    logging.getLogger("medgo_trainer.training.loop").addHandler(clock)
    logging.getLogger("medgo_trainer.training.loop").setLevel(logging.INFO)
    os.environ.update({"MEDGO_TRAINER_FEEDBACK_URL": feedback,
                       "MEDGO_TRAINER_FEEDBACK_TOKEN": TRAINER_TOKEN})
    rc = train(["loop", "--min-pairs", str(min(pairs, args.min_pairs)),
                "--set", f"trl.max_steps={args.steps}",
                "--set", f"trl.learning_rate={args.learning_rate}",
                "--tasks", "care-advice,kuake-qic", "--limit", str(args.limit),
                "--max-tokens", str(args.max_tokens), "--policy", str(policy), "--no-progress"])
    return rc, clock.marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=default_model_dir() / "medgo-tiny")
    parser.add_argument("--samples", type=int, default=1, help="answers rated per question")
    parser.add_argument("--steps", type=int, default=30, help="DPO steps")
    parser.add_argument("--learning-rate", type=float, default=3e-3,
                        help="DPO learning rate (medgo-tiny's empty answers need a push)")
    parser.add_argument("--limit", type=int, default=100, help="items per task in the gate")
    parser.add_argument("--min-n", type=int, default=100, help="the gate's min_n")
    parser.add_argument("--margin", type=float, default=2.0, help="the gate's margin")
    parser.add_argument("--min-pairs", type=int, default=16)
    parser.add_argument("--max-tokens", type=int, default=48, help="cap on every answer")
    parser.add_argument("--inverted", action="store_true", help="rate the opposite behaviour")
    args = parser.parse_args()
    load_start = _load()
    data_dir = TrainerSettings().data_dir
    task = CareAdvice()
    records = read_records(data_dir / task.eval_file)
    rated = task.rated_questions(records)
    held_out = [e.data["question"] for e in task.load(data_dir)]

    with tempfile.TemporaryDirectory(prefix="medgo-loop-bench-") as tmp:
        work = Path(tmp)
        root = work / "models"
        base = shutil.copytree(args.model_dir / "base", root / "medgo-tiny" / "base")
        adapter = shutil.copytree(args.model_dir / "adapters" / "sft",
                                  root / "medgo-tiny" / "adapters" / "sft")
        manifest = root / "serving.json"
        ServingManifest(checkpoint_id="medgo-tiny-sft", base_model=str(base), adapters=[
            {"name": "medgo-tiny-sft", "path": str(adapter)}]).save(manifest)
        os.environ["MEDGO_TRAINER_MODEL_DIR"] = str(root)
        keys = work / "api_keys.json"
        key = subprocess.run(
            [str(BIN / "medgo-gateway"), "keys", "add", "--file", str(keys), "--name",
             "dr-bench", "--role", "clinician", "--department", "全科",
             "--rpm", "100000", "--tpm", "100000000"],  # the bench is not what quotas limit
            capture_output=True, text=True, check=True).stdout.strip()
        fb_port = free_port()
        feedback = f"http://127.0.0.1:{fb_port}"
        fb_env = {"MEDGO_FEEDBACK_PORT": str(fb_port),
                  "MEDGO_FEEDBACK_DATABASE_URL": f"sqlite:///{work / 'feedback.db'}",
                  "MEDGO_FEEDBACK_LOCAL_MODE": "true",  # the bench tokens are short
                  "MEDGO_FEEDBACK_SERVICE_TOKENS":
                      f"gateway={GATEWAY_TOKEN},trainer={TRAINER_TOKEN}"}
        with _service("medgo-feedback", fb_env, feedback, work / "fb.log"):
            t0 = time.perf_counter()
            with serving(work, manifest, feedback, keys, "before") as gateway:
                before, ckpt_before = held_out_rate(gateway, key, held_out, args.max_tokens)
                rows = asyncio.run(_answers(gateway, key, rated * args.samples,
                                            args.max_tokens, 0.8))
                unacceptable = rate(gateway, key, rows, args.inverted)
            rating_s = time.perf_counter() - t0
            stored = wait_for_pairs(feedback, unacceptable)
            rc, marks = run_loop(args, work, feedback, unacceptable)
            promoted = ServingManifest.load(manifest).checkpoint_id
            after, ckpt_after = before, ckpt_before
            if rc == 0:
                with serving(work, manifest, feedback, keys, "after") as gateway:
                    after, ckpt_after = held_out_rate(gateway, key, held_out, args.max_tokens)

    delta, low, high = paired_bootstrap("mean", before, after, samples=2000, seed=0)
    print(f"\nwall {time.perf_counter() - t0:.0f} s from the first vLLM start; load average "
          f"(1, 5, 15 min) at the start {load_start}, at the end {_load()}")
    n = len(held_out)
    print(f"\nratings: {len(rows)} answers to {len(rated)} rated questions, "
          f"{unacceptable} unacceptable ({'inverted' if args.inverted else 'see-a-doctor'} policy);"
          f" rating phase {rating_s:.0f} s; {stored} DPO pairs in the store")
    print(f"loop exit {rc}; manifest now serves {promoted}")
    print("\n| held-out questions | checkpoint | says when to see a doctor |\n|---|---|---:|")
    print(f"| {n} | {ckpt_before} | {100 * sum(before) / n:.1f} % |")
    print(f"| {n} | {ckpt_after} | {100 * sum(after) / n:.1f} % |")
    print(f"\nrise: {delta:+.1f} points, 95% paired bootstrap CI [{low:+.1f}, {high:+.1f}]")
    print("\n| loop step | wall s |\n|---|---:|")
    for (_, t_prev), (name, t) in itertools.pairwise(marks):
        print(f"| {STEP_NAMES.get(name, name)} | {t - t_prev:.1f} |")
    print(json.dumps({"before": sum(before) / n, "after": sum(after) / n, "delta": delta,
                      "ci": [low, high], "loop_rc": rc}))


if __name__ == "__main__":
    main()
