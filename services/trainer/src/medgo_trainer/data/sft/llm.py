"""One chat completion from any OpenAI-compatible endpoint (our gateway or vLLM).

The builders that use a model (drug-question paraphrase, guideline QA generation)
make a handful of sequential calls, so a plain synchronous request is enough; the
evaluation client's concurrency and cache are built for thousands of items.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from medgo_trainer.data.sft.example import Message, SourceError
from medgo_trainer.evaluation.client import CHAT_PATH, normalise_endpoint


@dataclass(frozen=True)
class Endpoint:
    """Where to send requests; ``model`` is the served name (``medgo`` or an adapter)."""

    url: str
    model: str = "medgo"
    api_key: str | None = None
    timeout_s: float = 120.0

    @classmethod
    def from_options(cls, options: dict) -> Endpoint:
        if not options.get("endpoint"):
            raise SourceError("an LLM step needs `endpoint` (an OpenAI-compatible base URL)")
        return cls(url=str(options["endpoint"]), model=str(options.get("model", "medgo")),
                   api_key=options.get("api_key"))


def complete(endpoint: Endpoint, messages: list[Message], *, max_tokens: int = 256) -> str:
    """The assistant text of one greedy completion; HTTP failures raise SourceError."""
    headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
    body = {"model": endpoint.model, "messages": messages, "max_tokens": max_tokens,
            "temperature": 0}
    url = normalise_endpoint(endpoint.url) + CHAT_PATH
    try:
        response = httpx.post(url, json=body, headers=headers, timeout=endpoint.timeout_s)
        response.raise_for_status()
        return response.json()["choices"][0]["message"].get("content") or ""
    except (httpx.HTTPError, KeyError, ValueError) as exc:
        raise SourceError(f"LLM endpoint {url} failed: {exc}") from exc
