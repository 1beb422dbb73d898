"""Delivery of interaction records and ratings to the feedback service.

Interaction records are always written to the durable spool first (off the request
path, in a thread) and a background task forwards them, in order, as soon as the
feedback service answers; so a chat never waits for the feedback service and a
record survives a feedback outage or a gateway restart. Ratings are forwarded at once
so the clinician sees the feedback service's answer, and spooled (202) when it is
down, or when records are still queued (a rating must not overtake the record it
rates). Everything that reaches the spool is already de-identified.

Two gateway replicas do not share a spool: a clinician may rate, through replica B,
an answer whose record is still in replica A's spool. Feedback then answers 404
(`interaction_not_found`); the rating is spooled and retried with exponential
back-off (capped at a minute) for `rating_retry_window_s` before it is set aside as
refused. On shutdown `stop()` drains the spool to feedback within `drain_timeout_s`
(a rollout must not strand records on a pod that is going away); what cannot be
delivered in that time stays in the spool file for the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
import orjson
from medgo_common.errors import MedgoError
from medgo_common.schemas.feedback import InteractionRecord, RatingIn

from medgo_gateway.metrics import GatewayMetrics
from medgo_gateway.replicas import REQUEST_ERRORS
from medgo_gateway.spool import Spool, SpoolFullError, SpoolItem

logger = logging.getLogger("medgo.gateway.recorder")

INTERACTION = "interaction"
RATING = "rating"
_BATCH = 50
# Group commit: while other answers are on their way, the writer waits this long after
# the first record of a batch, so the answers vLLM finishes in one step (a wave, at any
# concurrency) share one transaction and one fsync (~0.3 ms CPU each). Without it, at 16
# in flight, two thirds of the writes held one record (bench/gateway.py;
# docs/benchmarks.md). With nothing else in flight no record can join, so the record
# is written at once: no timer wake-up, and durable 5 ms sooner. The chat answer never
# waits for this; a record spends at most 5 ms more in memory before it is durable.
_GROUP_COMMIT_S = 0.005
_NOT_FOUND = "interaction_not_found"
_MAX_BACKOFF_S = 60.0


# Builds one redacted record, or None when redaction failed (fail closed: nothing kept).
RecordBuilder = Callable[[], InteractionRecord | None]


class FeedbackUnavailableError(Exception):
    """The feedback service could not be reached or failed (5xx); retry later."""


@dataclass(frozen=True)
class _Reply:
    """The feedback service's answer: its status and its bytes."""

    status: int
    raw: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def body(self) -> dict:
        """Its JSON object ({} if none): read only for ratings, whose answer the
        clinician sees; a delivered batch of records needs only the status."""
        try:
            answer = orjson.loads(self.raw)
        except orjson.JSONDecodeError:
            return {}
        return answer if isinstance(answer, dict) else {}


class Recorder:
    def __init__(
        self,
        *,
        client: aiohttp.ClientSession,
        feedback_url: str,
        token: str | None,
        spool: Spool,
        metrics: GatewayMetrics,
        retry_interval_s: float,
        rating_retry_window_s: float = 3600.0,
        drain_timeout_s: float = 15.0,
        answers_pending: Callable[[], bool] = lambda: True,
    ) -> None:
        """`answers_pending`: whether other answers are on their way (requests in flight
        upstream), i.e. whether a record written now could have shared its write."""
        self._client = client
        self._url = feedback_url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._spool = spool
        self._metrics = metrics
        self._retry_interval_s = retry_interval_s
        self._rating_retry_window_s = rating_retry_window_s
        self._drain_timeout_s = drain_timeout_s
        self._answers_pending = answers_pending
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # Records waiting to be built (redacted) and spooled, in one batch per write.
        self._inbox: list[RecordBuilder] = []
        self._inbox_ready = asyncio.Event()
        self._writing = False
        self._writer: asyncio.Task | None = None
        self._outage = False
        self._depth = 0
        metrics.spool_bytes.set_function(lambda: spool.bytes)
        if spool.max_bytes is not None:
            metrics.spool_max_bytes.set(spool.max_bytes)

    # -- lifecycle
    async def start(self) -> None:
        self._set_depth(await asyncio.to_thread(self._spool.depth))
        self._metrics.spool_oldest_age.set_function(self._spool.oldest_age)
        self._task = asyncio.create_task(self._run(), name="medgo-gateway-delivery")
        self._writer = asyncio.create_task(self._write_loop(), name="medgo-gateway-spooler")

    async def stop(self) -> None:
        """Spool what is still in memory, drain the spool to feedback (bounded), stop.

        The writer is only cancelled while idle: a write in its thread cannot be
        interrupted, and the spool is closed right after this returns. The drain
        stops at `drain_timeout_s` or at the first outage; what is left stays in the
        spool file (replayed by the next start on the same file).
        """
        while self._inbox or self._writing:  # `submit` already woke the writer for these
            await asyncio.sleep(0.01)
        for task in (self._writer, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._drain_timeout_s):
                await self._drain()
        left = await asyncio.to_thread(self._spool.depth)
        self._set_depth(left)
        if left:
            logger.warning("shutdown: %d items left in the spool %s", left, self._spool.path)
        else:
            logger.info("shutdown: spool drained to the feedback service")

    async def _drain(self) -> None:
        """Deliver every pending item once, deferred ratings included, in order."""
        after = 0
        while True:
            items = await asyncio.to_thread(
                functools.partial(self._spool.head, _BATCH, after_seq=after)
            )
            if not items:
                return
            try:
                await self._deliver(items, final=True)
            except FeedbackUnavailableError:
                return
            after = items[-1].seq

    # -- producers
    def submit(self, build: RecordBuilder) -> None:
        """Queue a record for the spool; `build` (which redacts) runs in the writer thread.

        Writes are batched: one transaction and one fsync for all records that arrived
        during the previous write or, while other answers are on their way, within
        `_GROUP_COMMIT_S`; off the event loop.
        """
        self._inbox.append(build)
        self._inbox_ready.set()

    async def _write_loop(self) -> None:
        while True:
            await self._inbox_ready.wait()
            if self._answers_pending():
                await asyncio.sleep(_GROUP_COMMIT_S)
            self._inbox_ready.clear()
            batch, self._inbox = self._inbox, []
            self._writing = True
            try:
                added = await asyncio.to_thread(self._write, batch)
                self._set_depth(self._depth + added)  # read after the await: acks move it
            except Exception as exc:
                # The spool itself failed (disk, or full): these records are lost; say so.
                if isinstance(exc, SpoolFullError):
                    self._metrics.spool_full.labels(kind=INTERACTION).inc(len(batch))
                self._metrics.record_failures.inc(len(batch))
                logger.error("spool write failed", extra={"error_type": type(exc).__name__})
            finally:
                self._writing = False
            self._wake.set()

    def _write(self, batch: list[RecordBuilder]) -> int:
        records = [r for r in (build() for build in batch) if r is not None]
        # No `trace_id` key without a trace: a feedback service from before the field
        # (it forbids unknown keys) still accepts the records of an untraced gateway.
        return self._spool.put_many(INTERACTION, [
            (str(r.id), r.model_dump(mode="json", exclude=None if r.trace_id else {"trace_id"}))
            for r in records
        ])

    async def rate(self, rating: RatingIn) -> tuple[int, dict]:
        """Forward a rating now, or spool it; returns (status, body) for the client."""
        key = rating.idempotency_key or ""
        # A rating must not overtake its record: records in memory count as queued.
        behind = bool(self._inbox) or self._writing
        if not behind and self._depth:
            behind = await asyncio.to_thread(self._spool.depth, INTERACTION) > 0
        if not behind:
            try:
                return await self._post_rating(rating)
            except FeedbackUnavailableError:
                logger.warning("feedback service unavailable; rating spooled")
            except MedgoError as exc:
                if exc.code != _NOT_FOUND:
                    raise
                # Its record may still be in another replica's spool: wait for it.
                self._metrics.rating_deferrals.inc()
        try:
            added = await asyncio.to_thread(
                self._spool.put, RATING, key, rating.model_dump(mode="json")
            )
        except SpoolFullError:
            self._metrics.spool_full.labels(kind=RATING).inc()
            raise MedgoError(
                503, "the rating could not be stored right now; retry shortly",
                code="spool_full", headers={"Retry-After": "30"},
            ) from None
        self._set_depth(self._depth + added)
        self._wake.set()
        return 202, {"status": "queued", "interaction_id": str(rating.interaction_id)}

    # -- delivery
    async def _post(self, path: str, body: dict, headers: dict[str, str]) -> _Reply:
        # aiohttp, as to the inference replicas: a POST through httpx cost this process
        # 2.2 ms of CPU when made every 0.3 s (c = 1), through aiohttp 0.8 ms.
        try:
            async with self._client.post(
                self._url + path, data=orjson.dumps(body),
                headers={**self._headers, "Content-Type": "application/json", **headers},
            ) as response:
                status, raw = response.status, await response.read()
        except REQUEST_ERRORS as exc:
            raise FeedbackUnavailableError(type(exc).__name__) from exc
        if status >= 500 or status in (401, 403, 408, 429):
            # Auth errors are configuration problems: keep the items until they are fixed.
            raise FeedbackUnavailableError(f"status {status}")
        return _Reply(status, raw)

    async def _post_rating(self, rating: RatingIn) -> tuple[int, dict]:
        headers = {"Idempotency-Key": rating.idempotency_key} if rating.idempotency_key else {}
        reply = await self._post("/v1/ratings", rating.model_dump(mode="json"), headers)
        body = reply.body()
        if reply.ok:
            self._metrics.delivered.labels(kind=RATING).inc()
            return reply.status, body
        error = body.get("error")
        error = error if isinstance(error, dict) else {}
        raise MedgoError(
            reply.status, error.get("message") or "the feedback service refused it",
            code=error.get("code"),
        )

    async def _deliver(self, items: list[SpoolItem], *, final: bool = False) -> None:
        """Send items in order; stops (raising) at the first outage.

        `final` (the shutdown drain): a rating still waiting for its record stays
        pending in the spool instead of being deferred again.
        """
        index = 0
        while index < len(items):
            item = items[index]
            if item.kind == RATING:
                batch = [item]
                try:
                    await self._post_rating(RatingIn.model_validate(item.payload))
                    refused = None
                except MedgoError as exc:
                    refused = f"{exc.status}: {exc.message}"
                    if exc.code == _NOT_FOUND and not final and await self._defer(item):
                        index += 1
                        continue
                    if exc.code == _NOT_FOUND and final:
                        index += 1
                        continue
            else:
                batch = [item]
                for nxt in items[index + 1 :]:
                    if nxt.kind != INTERACTION:
                        break
                    batch.append(nxt)
                reply = await self._post(
                    "/v1/interactions", {"records": [i.payload for i in batch]}, {}
                )
                refused = None if reply.ok else f"{reply.status}"
                if refused and len(batch) > 1:
                    # One bad record refuses the batch: retry them one by one.
                    for single in batch:
                        await self._deliver([single])
                    index += len(batch)
                    continue
            if refused:
                await asyncio.to_thread(self._spool.reject, batch[0].seq, refused)
                self._set_depth(self._depth - 1)
                self._metrics.spool_dead.labels(kind=item.kind).inc()
                logger.error("feedback service refused a spooled %s", item.kind)
            else:
                await asyncio.to_thread(self._spool.ack, [i.seq for i in batch])
                self._set_depth(self._depth - len(batch))
                self._metrics.delivered.labels(kind=item.kind).inc(len(batch))
            index += len(batch)

    async def _defer(self, item: SpoolItem) -> bool:
        """Retry a rating whose record has not arrived yet, with exponential back-off.

        False when its retry window is over (the caller then sets it aside as refused).
        """
        now = time.time()
        if now - item.created > self._rating_retry_window_s:
            return False
        delay = min(_MAX_BACKOFF_S, self._retry_interval_s * 2 ** min(item.attempts, 16))
        await asyncio.to_thread(self._spool.defer, item.seq, now + delay)
        self._metrics.rating_deferrals.inc()
        return True

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading, so a record spooled meanwhile wakes us
            # During an outage each retry sends the oldest item only: a refused connection
            # then costs one row read, not a batch read and decoded every retry interval.
            limit = 1 if self._outage else _BATCH
            items = await asyncio.to_thread(
                functools.partial(self._spool.head, limit, now=time.time())
            )
            if not items:
                await self._idle()
                continue
            try:
                await self._deliver(items)
                if self._outage:
                    self._outage = False
                    logger.info("feedback service reachable again; replaying the spool")
                elif len(items) < limit and not self._wake.is_set():
                    # All that was due went in this batch and nothing was spooled since:
                    # wait for the next item rather than read an empty spool first (a
                    # thread hop per delivery, which at low load is per record).
                    await self._idle()
            except FeedbackUnavailableError as exc:
                if not self._outage:  # once per outage, not once per retry
                    self._outage = True
                    logger.warning("feedback service unavailable (%s); spooling", exc)
                await asyncio.sleep(self._retry_interval_s)
            except Exception as exc:
                # Never let the delivery task die: the spool keeps the items.
                logger.error("spool delivery failed", extra={"error_type": type(exc).__name__})
                await asyncio.sleep(self._retry_interval_s)

    async def _idle(self) -> None:
        """Until something is spooled, or `retry_interval_s` (deferred ratings fall due)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self._retry_interval_s):
                await self._wake.wait()

    def _set_depth(self, depth: int) -> None:
        """Pending items, counted in memory (only this process writes the spool)."""
        self._depth = depth
        self._metrics.spool_depth.set(depth)
