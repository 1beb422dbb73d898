"""Async client for any OpenAI-compatible chat endpoint (our gateway or vLLM).

Bounded concurrency (a semaphore), retries with exponential backoff on transport
errors, 429 and 5xx (honouring ``Retry-After``), and the on-disk response cache.
One pooled ``httpx.AsyncClient`` per run. Requests are greedy (temperature 0) so a
cached answer is the answer the model would give again.
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
_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
# vLLM's 400 for prompt + max_tokens beyond the served context (wording varies by version).
_TOO_LONG = re.compile(r"context length|max_model_len|too long|maximum model length", re.I)


class EvalRequestError(RuntimeError):
    """The endpoint refused a request, or kept failing after every retry."""


class PromptTooLong(EvalRequestError):
    """The endpoint answered 400 because prompt + max_tokens exceed the model's context."""


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
    choice = body["choices"][0]
    text = choice.get("message", {}).get("content") or ""
    top: dict[str, float] = {}
    content = (choice.get("logprobs") or {}).get("content") or []
    if content:
        for entry in content[0].get("top_logprobs") or []:
            # Distinct token ids can decode to the same text; keep the likeliest.
            logprob = float(entry["logprob"])
            top[entry["token"]] = max(logprob, top.get(entry["token"], logprob))
    return Reply(text=text, top_logprobs=top)


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

    async def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        if self._http is None:
            raise RuntimeError("use EvalClient as an async context manager")
        attempt = 0
        while True:
            self.stats.requests += 1
            retry_after = None
            try:
                response = await self._http.post(CHAT_PATH, json=body)
            except httpx.TransportError as exc:
                failure = f"{self.endpoint} unreachable: {exc!r}"
            else:
                if response.status_code == 200:
                    return response.json()
                failure = (
                    f"{self.endpoint}{CHAT_PATH} answered {response.status_code}: "
                    f"{_error_message(response)}"
                )
                if response.status_code == 400 and _TOO_LONG.search(failure):
                    raise PromptTooLong(failure)
                if response.status_code not in _RETRY_STATUS:
                    raise EvalRequestError(failure)
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
