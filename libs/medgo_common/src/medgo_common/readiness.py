"""Readiness of a vLLM server: `/v1/models` answers and lists the served model.

vLLM binds its port only after the weights are loaded and the KV cache is allocated,
and `/v1/models` is what the gateway reads to discover the adapters, so "lists
`medgo`" is the readiness that matters to callers. Used by `medgo-inference --check`,
the test fixture and the benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx


def check_ready(
    base_url: str, served_model_name: str, timeout_s: float = 5.0, api_key: str | None = None
) -> str | None:
    """None when ready, else a short reason (for a probe's output or a failure message).

    `api_key`: the server's bearer key, when it requires one (vLLM guards /v1)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.get(f"{base_url.rstrip('/')}/v1/models", timeout=timeout_s, headers=headers)
    except httpx.HTTPError as exc:
        return f"{base_url} does not answer ({type(exc).__name__})"
    if resp.status_code != 200:
        return f"{base_url}/v1/models answered HTTP {resp.status_code}"
    try:
        ids = [m.get("id") for m in resp.json().get("data", [])]
    except (ValueError, AttributeError):
        return f"{base_url}/v1/models did not answer a model list"
    if served_model_name not in ids:
        return f"{base_url} serves {ids}, not {served_model_name!r}"
    return None


def wait_ready(
    base_url: str,
    served_model_name: str,
    timeout_s: float,
    still_starting: Callable[[], bool] = lambda: True,
    poll_s: float = 1.0,
) -> str | None:
    """Poll until ready (None), `timeout_s` passes, or `still_starting()` turns False
    (the server process died: no point waiting out the timeout). Returns the last reason."""
    deadline = time.monotonic() + timeout_s
    while True:
        reason = check_ready(base_url, served_model_name)
        if reason is None:
            return None
        if not still_starting():
            return f"server process exited while starting ({reason})"
        if time.monotonic() >= deadline:
            return f"not ready after {timeout_s:.0f} s ({reason})"
        time.sleep(poll_s)
