"""The Python API: `run_eval` evaluates a model behind an endpoint on a list of tasks.

Which examples run is fixed by (limit, seed) alone: a seeded sample of the
evaluation split, in file order, so two checkpoints are measured on the same items
and their reports can be paired. Few-shot demonstrations are the same fixed draw
for every item, from the training split when there is one, else from dev items
outside the sample. Answers come through `EvalClient`, so a re-run is served from
the cache and an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
from medgo_common.paths import default_data_dir
from tqdm import tqdm

from medgo_trainer.evaluation.cache import ResponseCache
from medgo_trainer.evaluation.catalog import make_task, resolve_tasks
from medgo_trainer.evaluation.client import EvalClient
from medgo_trainer.evaluation.mcq import Scoring
from medgo_trainer.evaluation.report import (
    TABLE1_TASKS,
    EvalReport,
    ExampleResult,
    RunInfo,
    TaskResult,
)
from medgo_trainer.evaluation.tasks import Example, Task

OUTPUT_CHARS = 500  # raw output kept per example in the report, for reading errors


def sample(examples: list[Example], limit: int | None, seed: int) -> list[Example]:
    """A seeded sample of ``limit`` examples kept in file order (all when None)."""
    if limit is None or limit >= len(examples):
        return examples
    chosen = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in chosen]


def pick_shots(pool: list[Example], shots: int, seed: int) -> list[Example]:
    """The same ``shots`` demonstrations for every item (a seeded draw from ``pool``)."""
    if shots <= 0 or not pool:
        return []
    return random.Random(seed + 1).sample(pool, min(shots, len(pool)))


@dataclass(frozen=True)
class PlannedTask:
    """A task with the examples it will run and the demonstrations each prompt gets."""

    task: Task
    examples: list[Example]
    shots: list[Example]

    def max_tokens(self, cap: int | None) -> int:
        return min(self.task.max_tokens, cap or self.task.max_tokens)


def plan_tasks(
    names: list[str],
    data_dir: Path,
    *,
    limit: int | None,
    shots: int,
    seed: int,
    scoring: Scoring = "generate",
) -> list[PlannedTask]:
    """What a run with these settings evaluates (bench/eval.py reuses it for HF)."""
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if shots < 0:
        raise ValueError(f"shots must be 0 or more, got {shots}")
    plan = []
    for task in resolve_tasks(names, data_dir, scoring):
        examples = task.load(data_dir)
        chosen = sample(examples, limit, seed)
        pool = task.shot_pool(data_dir) if shots else None
        if pool is None:
            ids = {e.id for e in chosen}
            pool = [e for e in examples if e.id not in ids]
        plan.append(PlannedTask(task, chosen, pick_shots(pool, shots, seed)))
    return plan


async def _run_task(
    client: EvalClient, planned: PlannedTask, model: str, max_tokens: int | None, bar: tqdm
) -> TaskResult:
    task, shots = planned.task, planned.shots
    params = {"max_tokens": planned.max_tokens(max_tokens)}

    async def one(example: Example) -> ExampleResult:
        choices = task.choices(example)
        if choices is None:
            reply = await client.chat(model, task.messages(example, shots), **params)
        else:
            prompt = (
                task.messages(example, shots)
                if task.chat_template()
                else task.completion_prompt(example, shots)
            )
            reply = await client.loglikelihood(model, prompt, choices)
        scored = task.score(example, reply)
        bar.update(1)
        return ExampleResult(
            id=example.id,
            subject=example.subject,
            unit=scored.unit,
            prediction=scored.prediction,
            output=reply.text[:OUTPUT_CHARS],
            error=reply.error,
        )

    results = await asyncio.gather(*(one(e) for e in planned.examples))
    return TaskResult.from_examples(
        task=task.name, title=task.title, metric=task.metric, kind=task.kind, examples=results
    )


async def _run(
    client: EvalClient,
    model: str,
    plan: list[PlannedTask],
    max_tokens: int | None,
    progress: bool,
) -> dict[str, TaskResult]:
    """All tasks at once, so the client's concurrency bound is what limits the load."""
    total = sum(len(p.examples) for p in plan)
    by_likelihood = [
        p.task for p in plan if p.examples and p.task.choices(p.examples[0]) is not None
    ]
    with tqdm(total=total, desc="medgo-eval", unit="ex", disable=not progress) as bar:
        async with client:
            for chat in sorted({task.chat_template() for task in by_likelihood}):
                await client.check_loglikelihood(model, chat)  # before any item is sent
            results = await asyncio.gather(
                *(_run_task(client, planned, model, max_tokens, bar) for planned in plan)
            )
    return {result.task: result for result in results}


def run_eval(
    endpoint: str,
    model: str,
    tasks: list[str],
    limit: int | None = None,
    shots: int = 0,
    concurrency: int = 4,
    cache_dir: Path | None = None,
    out: Path | None = None,
    *,
    data_dir: Path | None = None,
    api_key: str | None = None,
    scoring: Scoring = "generate",
    max_tokens: int | None = None,
    seed: int = 0,
    progress: bool = False,
    transport: httpx.AsyncBaseTransport | None = None,
) -> EvalReport:
    """Evaluate ``model`` at ``endpoint`` on ``tasks`` (names or groups, see `catalog`).

    ``limit`` caps the examples per task (a seeded sample); ``shots`` sets few-shot;
    ``cache_dir`` enables the response cache (None: no cache); ``out`` also writes the
    JSON report there and the Markdown table beside it (``.md``); ``max_tokens`` caps
    every task's answer length (smoke tests); ``data_dir`` defaults to the bundled
    data (callers holding `TrainerSettings` pass its ``data_dir``); ``transport``
    replaces the network (tests of endpoints that cannot be run here). Raises
    ValueError, TaskDataMissing or TaskDataError for bad tasks or data and
    `LogprobsUnavailable` for an endpoint that cannot score log-likelihoods (all
    before any item is sent), `EvalRequestError` when the endpoint fails.
    """
    started = datetime.now(UTC)
    data_dir = data_dir or default_data_dir()
    plan = plan_tasks(tasks, data_dir, limit=limit, shots=shots, seed=seed, scoring=scoring)
    cache = ResponseCache(cache_dir) if cache_dir is not None else None
    client = EvalClient(
        endpoint, api_key=api_key, concurrency=concurrency, cache=cache, transport=transport
    )
    try:
        results = asyncio.run(_run(client, model, plan, max_tokens, progress))
    finally:
        if cache is not None:
            cache.close()
    report = EvalReport(
        run=RunInfo(
            endpoint=client.endpoint,
            model=model,
            shots=shots,
            limit=limit,
            scoring=scoring,
            seed=seed,
            started_at=started,
            finished_at=datetime.now(UTC),
            requests=client.stats.requests,
            cache_hits=client.stats.cache_hits,
            no_data=sorted(t for t in TABLE1_TASKS if not make_task(t).available(data_dir)),
        ),
        tasks=results,
    )
    if out is not None:
        report.save(out)
        out.with_suffix(".md").write_text(report.to_markdown() + "\n", encoding="utf-8")
    return report
