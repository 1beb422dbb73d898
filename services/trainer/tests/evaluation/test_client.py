"""EvalClient retries and cache, against a fault-injecting ASGI endpoint.

Real vLLM cannot be made to answer 503 or 400 on demand, so these two behaviours are
tested against a small Starlette app speaking the OpenAI chat shape (a boundary
double); the real-vLLM path is covered by test_end_to_end.py.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from medgo_trainer.evaluation.cache import ResponseCache
from medgo_trainer.evaluation.client import (
    EvalClient,
    EvalRequestError,
    LogprobsUnavailable,
    normalise_endpoint,
)
from medgo_trainer.evaluation.runner import run_eval
from medgo_trainer.evaluation.tasks import Reply, TaskDataError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def _endpoint(statuses: list[int], seen: list[dict], message: str = "") -> httpx.ASGITransport:
    """Answers with ``statuses`` in turn (then 200), recording every request body."""

    async def chat(request: Request) -> JSONResponse:
        seen.append(await request.json())
        status = statuses.pop(0) if statuses else 200
        if status != 200:
            text = message or f"status {status}"
            error = {"error": {"message": text, "type": "x", "code": status}}
            return JSONResponse(error, status_code=status, headers={"Retry-After": "0"})
        body = {
            "choices": [
                {
                    "message": {"role": "assistant", "content": "答案：B"},
                }
            ]
        }  # fmt: skip
        return JSONResponse(body)

    app = Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])
    return httpx.ASGITransport(app=app)


def _ask(client: EvalClient, content: str = "问题") -> Reply:
    async def go() -> Reply:
        async with client:
            return await client.chat("medgo", [{"role": "user", "content": content}], max_tokens=4)

    return asyncio.run(go())


def test_retries_transient_errors_then_succeeds() -> None:
    seen: list[dict] = []
    client = EvalClient(
        "http://eval.test/v1/", transport=_endpoint([503, 429], seen), backoff_s=0.0
    )
    reply = _ask(client)
    assert reply.text == "答案：B"
    assert (client.stats.requests, client.stats.retries) == (3, 2)
    assert seen[0] == {
        "model": "medgo",
        "messages": [{"role": "user", "content": "问题"}],
        "temperature": 0.0,
        "max_tokens": 4,
    }


def test_client_error_is_not_retried_and_gives_the_envelope_message() -> None:
    seen: list[dict] = []
    client = EvalClient("http://eval.test", transport=_endpoint([400], seen), backoff_s=0.0)
    with pytest.raises(EvalRequestError, match="answered 400: status 400"):
        _ask(client)
    assert len(seen) == 1


def test_gives_up_after_max_retries() -> None:
    seen: list[dict] = []
    client = EvalClient(
        "http://eval.test", transport=_endpoint([503] * 9, seen), backoff_s=0.0, max_retries=2
    )
    with pytest.raises(EvalRequestError, match="answered 503"):
        _ask(client)
    assert len(seen) == 3


def test_cache_serves_repeats_and_keys_on_the_request(tmp_path: Path) -> None:
    seen: list[dict] = []
    cache = ResponseCache(tmp_path)
    transport = _endpoint([], seen)
    _ask(EvalClient("http://eval.test", transport=transport, cache=cache))
    again = EvalClient("http://eval.test", transport=transport, cache=cache)
    assert _ask(again).text == "答案：B"
    assert (again.stats.requests, again.stats.cache_hits) == (0, 1)
    _ask(EvalClient("http://eval.test", transport=transport, cache=cache), content="另一个问题")
    assert len(seen) == 2 and len(cache) == 2
    cache.close()


def test_normalise_endpoint() -> None:
    assert normalise_endpoint("http://h:8001/v1/") == "http://h:8001"
    assert normalise_endpoint("http://h:8000") == "http://h:8000"
    with pytest.raises(ValueError, match="concurrency"):
        EvalClient("http://h", concurrency=0)


def test_prompt_beyond_the_context_scores_as_no_answer_and_is_cached(tmp_path: Path) -> None:
    seen: list[dict] = []
    too_long = "This model's maximum context length is 2048 tokens. However, you requested 2115"
    transport = _endpoint([400], seen, message=too_long)
    cache = ResponseCache(tmp_path)
    reply = _ask(EvalClient("http://eval.test", transport=transport, cache=cache))
    assert reply.text == "" and reply.error is not None and "2048 tokens" in reply.error
    again = EvalClient("http://eval.test", transport=transport, cache=cache)
    assert _ask(again) == reply
    assert len(seen) == 1 and again.stats.requests == 0
    cache.close()


def test_logprob_mode_against_an_endpoint_without_logprobs_fails_before_any_item(
    data_dir: Path,
) -> None:
    """A chat-only endpoint (like our gateway, which allowlists chat): the probe is
    refused with one clear error and not a single evaluation item is sent."""
    seen: list[dict] = []
    with pytest.raises(LogprobsUnavailable, match="/tokenize is not served"):
        run_eval(
            "http://chat-only", "medgo", ["mcq-cnmleqa"], limit=3, scoring="logprob",
            data_dir=data_dir, transport=_endpoint([], seen),
        )  # fmt: skip
    assert seen == []  # no chat request: nothing was evaluated


def test_logprob_mode_against_completions_without_logprobs_fails_before_any_item(
    data_dir: Path,
) -> None:
    """An OpenAI-compatible server that serves /tokenize and /v1/completions but ignores
    ``echo``/``logprobs`` (answers text, no prompt log-probabilities): the one probe
    says so, and no evaluation item is sent."""
    completions: list[dict] = []

    async def tokenize(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"tokens": list(range(len(body.get("prompt") or "答案：")))})

    async def complete(request: Request) -> JSONResponse:
        completions.append(await request.json())
        return JSONResponse({"choices": [{"index": i, "text": "", "logprobs": None}
                                         for i in range(len(completions[-1]["prompt"]))]})

    app = Starlette(routes=[Route("/tokenize", tokenize, methods=["POST"]),
                            Route("/v1/completions", complete, methods=["POST"])])
    with pytest.raises(LogprobsUnavailable, match="returned no prompt log-probabilities"):
        run_eval(
            "http://no-logprobs", "medgo", ["mcq-cnmleqa"], limit=3, scoring="logprob",
            data_dir=data_dir, transport=httpx.ASGITransport(app=app),
        )  # fmt: skip
    assert len(completions) == 1  # the probe ("答案：" + A/B), no item


def test_dataset_missing_a_field_fails_before_any_request(tmp_path: Path) -> None:
    """A data file whose records lack a field the task needs: one error naming the file,
    the record and the field, raised while planning, so nothing reaches the endpoint."""
    target = tmp_path / "corpus" / "huatuo_bentsao"
    target.mkdir(parents=True)
    (target / "benchmark_question.json").write_text('[{"query": "头痛怎么办？"}]',
                                                    encoding="utf-8")
    seen: list[dict] = []
    with pytest.raises(TaskDataError, match=r"record 0 lacks field\(s\) question"):
        run_eval("http://eval.test", "medgo", ["care-advice"], data_dir=tmp_path,
                 transport=_endpoint([], seen))
    assert seen == []
