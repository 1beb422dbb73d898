"""Async client for any OpenAI-compatible chat endpoint (our gateway or vLLM).

Bounded concurrency (a semaphore), retries with exponential backoff on transport
errors, 429 and 5xx (honouring ``Retry-After``), and the on-disk response cache.
One pooled ``httpx.AsyncClient`` per run. Requests are greedy (temperature 0) so a
cached answer is the answer the model would give again.

Log-likelihood scoring (`loglikelihood`) works as lm-evaluation-harness does with a
local completions server: context and each continuation are tokenized separately
(vLLM's ``/tokenize``, with the chat template for a conversation), the joined token
ids are sent to ``/v1/completions`` with ``echo`` and ``logprobs`` and no new token,
and the continuation's prompt log-probabilities are summed. `check_loglikelihood`
probes that once before a run, so an endpoint that cannot do it (the gateway, which
allowlists chat only) is refused before any item is sent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from medgo_trainer.evaluation.cache import ResponseCache, cache_key
from medgo_trainer.evaluation.tasks import Reply

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
TOKENIZE_PATH = "/tokenize"
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# What a server (or our gateway's allowlist) answers for a path it does not serve.
_NOT_SERVED = frozenset({403, 404, 405, 501})
# vLLM's 400 for prompt + max_tokens beyond the served context (wording varies by version).
_TOO_LONG = re.compile(r"context length|max_model_len|too long|maximum model length", re.I)


class EvalRequestError(RuntimeError):
    """The endpoint refused a request, or kept failing after every retry."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of the last answer, None if unreachable


class PromptTooLong(EvalRequestError):
    """The endpoint answered 400 because prompt + max_tokens exceed the model's context."""


class LogprobsUnavailable(EvalRequestError):
    """Log-likelihood scoring was asked of an endpoint that cannot return prompt
    log-probabilities (no ``/tokenize`` or no ``echo`` + ``logprobs`` on completions)."""


@dataclass
class ClientStats:
    requests: int = 0  # HTTP requests actually sent (retries included)
    cache_hits: int = 0
    retries: int = 0


def normalise_endpoint(endpoint: str) -> str:
    """``http://host:8001``, ``…/`` and ``…/v1`` all name the same server."""
    base = endpoint.rstrip("/")
    return base.removesuffix("/v1")


def _reply_from(body: dict[str, Any]) -> Reply:
    return Reply(text=body["choices"][0].get("message", {}).get("content") or "")


def _continuation_logprob(choice: dict[str, Any], n_tokens: int, where: str) -> float:
    """Sum of the last ``n_tokens`` prompt log-probabilities echoed in ``choice``."""
    logprobs = (choice.get("logprobs") or {}).get("token_logprobs")
    if not logprobs or len(logprobs) < n_tokens + 1:
        raise LogprobsUnavailable(
            f"{where} returned no prompt log-probabilities (echo + logprobs unsupported)"
        )
    # echo with max_tokens 0: the list is exactly the prompt's tokens (first is None)
    tail = logprobs[-n_tokens:] if n_tokens else []
    if any(lp is None for lp in tail):
        raise LogprobsUnavailable(f"{where} returned no log-probability for a prompt token")
    return float(sum(tail))


def _error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


class EvalClient:
    """Use as ``async with EvalClient(url, ...) as client: await client.chat(...)``."""

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str | None = None,
        concurrency: int = 4,
        cache: ResponseCache | None = None,
        max_retries: int = 4,
        backoff_s: float = 0.5,
        timeout_s: float = 300.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.endpoint = normalise_endpoint(endpoint)
        self.cache = cache
        self.stats = ClientStats()
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._limit = asyncio.Semaphore(concurrency)
        self._max_retries = max_retries
        self._backoff_s = backoff_s
        self._timeout = httpx.Timeout(timeout_s, connect=10.0)
        self._transport = transport  # None = real network; tests inject faulty endpoints
        self._http: httpx.AsyncClient | None = None
        # Continuations ("A", "AB", …) repeat on every item: tokenized once per run.
        self._pieces: dict[tuple[str, str], list[int]] = {}

    async def __aenter__(self) -> EvalClient:
        self._http = httpx.AsyncClient(
            base_url=self.endpoint,
            headers=self._headers,
            timeout=self._timeout,
            transport=self._transport,
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.aclose()

    async def chat(self, model: str, messages: list[dict[str, str]], **params: Any) -> Reply:
        """One greedy chat completion; served from the cache when already asked."""
        body = {"model": model, "messages": messages, "temperature": 0.0, **params}
        key = cache_key(self.endpoint, CHAT_PATH, body)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return Reply(**hit)
        async with self._limit:
            try:
                reply = _reply_from(await self._post(body))
            except PromptTooLong as exc:
                # Not a failure of the run: this checkpoint cannot answer this item,
                # which scores as no answer, the same way on every re-run.
                reply = Reply(text="", error=str(exc))
        if self.cache is not None:
            self.cache.put(key, dataclasses.asdict(reply))
        return reply

    async def loglikelihood(
        self, model: str, prompt: str | list[dict[str, str]], continuations: list[str]
    ) -> Reply:
        """Each continuation's summed log-probability after ``prompt`` (a plain text, or
        a conversation rendered by the served chat template up to the assistant turn)."""
        body = {"model": model, "prompt": prompt, "continuations": continuations}
        key = cache_key(self.endpoint, "loglikelihood", body)
        if self.cache is not None and (hit := self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return Reply(**hit)
        async with self._limit:
            try:
                reply = await self._loglikelihood(model, prompt, continuations)
            except PromptTooLong as exc:
                reply = Reply(text="", error=str(exc))
        if self.cache is not None:
            self.cache.put(key, dataclasses.asdict(reply))
        return reply

    async def _tokens(self, body: dict[str, Any]) -> list[int]:
        where = f"{self.endpoint}{TOKENIZE_PATH}"
        answer = await self._post_served(body, TOKENIZE_PATH)
        if not isinstance(answer.get("tokens"), list):
            raise LogprobsUnavailable(f"{where} returned no token ids")
        return [int(t) for t in answer["tokens"]]

    async def _loglikelihood(
        self, model: str, prompt: str | list[dict[str, str]], continuations: list[str]
    ) -> Reply:
        if isinstance(prompt, str):
            context = await self._tokens({"model": model, "prompt": prompt})
        else:
            context = await self._tokens(
                {"model": model, "messages": prompt, "add_generation_prompt": True}
            )
        pieces = []
        for c in continuations:
            if (model, c) not in self._pieces:
                self._pieces[model, c] = await self._tokens(
                    {"model": model, "prompt": c, "add_special_tokens": False}
                )
            pieces.append(self._pieces[model, c])
        body = {
            "model": model,
            "prompt": [context + piece for piece in pieces],
            "max_tokens": 0,
            "echo": True,
            "logprobs": 0,
            "temperature": 0.0,
        }
        where = f"{self.endpoint}{COMPLETIONS_PATH}"
        answer = await self._post_served(body, COMPLETIONS_PATH)
        choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != len(continuations):
            raise LogprobsUnavailable(
                f"{where} answered {len(choices)} choices for {len(continuations)} prompts"
            )
        scores = {
            c: _continuation_logprob(choice, len(piece), where)
            for c, piece, choice in zip(continuations, pieces, choices, strict=True)
        }
        return Reply(text="", choice_logprobs=scores)

    async def check_loglikelihood(self, model: str, chat: bool) -> None:
        """One uncached probe; raises `LogprobsUnavailable` with the reason when the
        endpoint cannot score continuations (called before a run sends any item)."""
        prompt: str | list[dict[str, str]] = (
            [{"role": "user", "content": "答案："}] if chat else "答案："
        )
        await self._loglikelihood(model, prompt, ["A", "B"])

    async def _post_served(self, body: dict[str, Any], path: str) -> dict[str, Any]:
        """`_post`, with "this path is not served here" turned into `LogprobsUnavailable`."""
        try:
            return await self._post(body, path)
        except EvalRequestError as exc:
            if exc.status in _NOT_SERVED:
                raise LogprobsUnavailable(
                    f"{self.endpoint}{path} is not served ({exc}); log-likelihood scoring "
                    "needs an endpoint with /tokenize and /v1/completions prompt "
                    "log-probabilities, such as vLLM directly (or use --scoring generate)",
                    exc.status,
                ) from exc
            raise

    async def _post(self, body: dict[str, Any], path: str = CHAT_PATH) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("use EvalClient as an async context manager")
        attempt = 0
        while True:
            self.stats.requests += 1
            retry_after = None
            try:
                response = await self._http.post(path, json=body)
            except httpx.TransportError as exc:
                failure = f"{self.endpoint} unreachable: {exc!r}"
            else:
                if response.status_code == 200:
                    return response.json()
                failure = (
                    f"{self.endpoint}{path} answered {response.status_code}: "
                    f"{_error_message(response)}"
                )
                if response.status_code == 400 and _TOO_LONG.search(failure):
                    raise PromptTooLong(failure, response.status_code)
                if response.status_code not in _RETRY_STATUS:
                    raise EvalRequestError(failure, response.status_code)
                retry_after = response.headers.get("retry-after")
            if attempt == self._max_retries:
                raise EvalRequestError(failure)
            await self._sleep(attempt, retry_after)
            attempt += 1

    async def _sleep(self, attempt: int, retry_after: str | None) -> None:
        self.stats.retries += 1
        delay = self._backoff_s * 2**attempt
        if retry_after and retry_after.isdigit():
            delay = min(max(delay, float(retry_after)), 60.0)
        await asyncio.sleep(delay)
