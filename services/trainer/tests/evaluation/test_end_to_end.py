"""The harness end to end through real vLLM serving medgo-tiny (root `vllm_server`).

Two items of every task whose data is present, zero-shot, answers capped at a few
tokens so the whole file stays well under a minute once vLLM is up. A tiny model
scores near zero; what is asserted is that every task ran, parsed and scored, that
a second run is answered entirely from the cache, and that log-likelihood scoring
gets every candidate's prompt log-probability back from vLLM, in both variants.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from medgo_trainer.evaluation.catalog import resolve_tasks
from medgo_trainer.evaluation.cli import main
from medgo_trainer.evaluation.client import EvalClient
from medgo_trainer.evaluation.report import EvalReport
from medgo_trainer.evaluation.runner import run_eval
from medgo_trainer.evaluation.tasks import Reply

LIMIT = 2
MAX_TOKENS = 24


def test_every_task_runs_then_a_rerun_is_served_from_cache(
    vllm_server: str, medgo_tiny, data_dir: Path, tmp_path: Path
) -> None:
    model = medgo_tiny.adapter_name
    cache_dir = tmp_path / "cache"
    first = run_eval(
        vllm_server, model, ["all"], limit=LIMIT, shots=0, concurrency=4, cache_dir=cache_dir,
        out=tmp_path / "first.json", data_dir=data_dir, max_tokens=MAX_TOKENS,
    )  # fmt: skip
    expected = {task.name for task in resolve_tasks(["all"], data_dir)}
    assert len(expected) >= 13  # 9 CBLUE tasks with data, 2 exam sets, SafetyBench, refusal
    assert set(first.tasks) == expected
    for result in first.tasks.values():
        assert result.n == LIMIT, result.task
        assert 0.0 <= result.score <= 100.0, result.task
        assert all(isinstance(e.output, str) for e in result.examples)
    assert first.run.requests >= LIMIT * len(expected)
    assert first.run.cache_hits == 0
    assert (tmp_path / "first.md").read_text(encoding="utf-8").count("| ") > len(expected)

    second_path = tmp_path / "second.json"
    rc = main(
        ["run", "--endpoint", vllm_server, "--model", model, "--tasks", "all",
         "--limit", str(LIMIT), "--max-tokens", str(MAX_TOKENS), "--cache-dir", str(cache_dir),
         "--data-dir", str(data_dir), "--out", str(second_path), "--no-progress"]
    )  # fmt: skip
    assert rc == 0
    second = EvalReport.load(second_path)
    assert second.run.requests == 0
    assert second.run.cache_hits == LIMIT * len(expected)
    assert {n: t.score for n, t in second.tasks.items()} == {
        n: t.score for n, t in first.tasks.items()
    }


def test_loglikelihood_scoring_through_real_completions(
    vllm_server: str, medgo_tiny, data_dir: Path
) -> None:
    (task,) = resolve_tasks(["mcq-cmexam"], data_dir, scoring="logprob")
    example = task.load(data_dir)[0]
    choices = task.choices(example)
    assert choices is not None and len(choices) == 31  # CMExam: every letter set

    async def score(prompt) -> Reply:
        async with EvalClient(vllm_server) as client:
            return await client.loglikelihood(medgo_tiny.adapter_name, prompt, choices)

    plain = asyncio.run(score(task.completion_prompt(example, [])))
    chat = asyncio.run(score(task.messages(example, [])))
    for reply in (plain, chat):
        assert set(reply.choice_logprobs) == set(choices)
        assert all(lp < 0.0 for lp in reply.choice_logprobs.values())
    assert plain.choice_logprobs != chat.choice_logprobs  # the chat template is applied
    # a longer answer set costs at least its extra tokens' log-probabilities
    assert len(set(plain.choice_logprobs.values())) > 1
    report = run_eval(
        vllm_server, medgo_tiny.adapter_name, ["mcq-cnmleqa"], limit=LIMIT,
        scoring="logprob-chat", cache_dir=None, data_dir=data_dir,
    )  # fmt: skip
    result = report.tasks["mcq-cnmleqa"]
    assert report.run.scoring == "logprob-chat" and result.n == LIMIT
    assert all(e.prediction in "ABCDE" for e in result.examples)  # always a choice
