"""Redaction off the caller's thread, under a deadline, failing closed.

    from medgo_common.phi.guarded import redact_within, aredact, redact_all_within

Services call the redactor from request handlers. Run inline, a long text holds the
event loop (async handlers) or a request thread for as long as it takes; so it runs
in a small shared worker pool instead, and the caller waits at most `timeout`
seconds, queueing included. Past the deadline the caller gets `RedactionError`, like
any other redaction failure, and must refuse the request or hold the record: the clear
text is never the fallback. A Python thread cannot be killed, so the abandoned work
finishes in the background; the redactor's linear worst case (see
`tests/test_phi_linear.py`) bounds how long that is, and the pool size bounds how many
such threads can exist at once. The deadline starts once the name model is loaded
(seconds, once per process; services load it at start-up with `awarm_up`).

Short texts are the exception: up to `INLINE_MAX_CHARS` characters (a text, or all the
texts of one record together) are redacted in the calling thread. Their worst case is
bounded by the redactor's linear cost (≤ 5 ms per 1,000 characters, so ≤ 1 ms here),
which is no longer than the hand-off to the pool and back costs in CPU on a loaded
gateway (~0.15-0.3 ms per hop, measured: docs/benchmarks.md "Gateway CPU"): the pool
would add work without bounding anything. A deadline could not cut such a call short
either; a redaction error still fails closed the same way.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable, Sequence
from functools import cache
from typing import TypeVar

from medgo_common.phi import prose_names
from medgo_common.phi.redactor import Redacted, RedactionError, contains_phi, redact

T = TypeVar("T")
Texts = TypeVar("Texts", str, tuple[str, ...])  # one text, or the texts of one record

DEFAULT_TIMEOUT_S = 2.0
INLINE_MAX_CHARS = 200  # ≤ 1 ms at the redactor's worst case: not worth a thread hop
_WORKERS = 4


@cache
def _pool() -> concurrent.futures.ThreadPoolExecutor:
    """One pool per process, created on first use (not at import, not in forked children)."""
    return concurrent.futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="phi")


def _submit(fn: Callable[[Texts], T], arg: Texts) -> concurrent.futures.Future[T]:
    """`fn(arg)` in the pool, or done at once in this thread for short texts."""
    texts = arg if isinstance(arg, tuple) else (arg,)
    for text in texts:
        if not isinstance(text, str):
            raise RedactionError(f"redaction needs str, got {type(text).__name__}")
    if not prose_names.loaded():  # a one-off load is not redaction work: no deadline
        _pool().submit(prose_names.warm_up).result()
    if sum(map(len, texts)) > INLINE_MAX_CHARS:
        return _pool().submit(fn, arg)
    done: concurrent.futures.Future[T] = concurrent.futures.Future()
    try:
        done.set_result(fn(arg))
    except Exception as exc:  # the caller's `result()` raises it, as from the pool
        done.set_exception(exc)
    return done


def _redact_all(texts: tuple[str, ...]) -> list[Redacted]:
    return [redact(text) for text in texts]


def _deadline_error(timeout: float) -> RedactionError:
    return RedactionError(f"redaction did not finish within {timeout:g} s")


def _wait(future: concurrent.futures.Future[T], timeout: float) -> T:
    try:
        return future.result(timeout=timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()  # still queued: never runs; running: its result is dropped
        raise _deadline_error(timeout) from None


def redact_within(text: str, timeout: float = DEFAULT_TIMEOUT_S) -> Redacted:
    """`redact(text)` in the worker pool; `RedactionError` if it takes over `timeout` s."""
    return _wait(_submit(redact, text), timeout)


def redact_all_within(texts: Sequence[str], timeout: float = DEFAULT_TIMEOUT_S) -> list[Redacted]:
    """`redact` of every text in one pool task, under one deadline for them all.

    For the texts of one record (its messages and its answer): one hand-off to the
    pool and back instead of one per text, which under load is most of the cost of
    redacting a short text (a queue put, a wake-up, the GIL changing hands twice).
    """
    return _wait(_submit(_redact_all, tuple(texts)), timeout)


def contains_phi_within(text: str, timeout: float = DEFAULT_TIMEOUT_S) -> bool:
    """`contains_phi(text)` in the worker pool, with the same deadline contract."""
    return _wait(_submit(contains_phi, text), timeout)


async def awarm_up() -> None:
    """Load the name model in the pool before serving (services' start-up).

    Loading takes seconds (more than a request's deadline), so a service that skipped
    this would refuse its first requests with PHI in them.
    """
    await asyncio.wrap_future(_pool().submit(prose_names.warm_up))


async def aredact(text: str, timeout: float = DEFAULT_TIMEOUT_S) -> Redacted:
    """`redact_within` for async code: the event loop keeps serving while it runs."""
    if not prose_names.loaded():
        await awarm_up()
    future = _submit(redact, text)
    if future.done():  # a short text, redacted inline: no round trip through the loop
        return future.result()
    try:
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)
    except TimeoutError:
        future.cancel()
        raise _deadline_error(timeout) from None
