"""Both queue ends on Redis Streams with consumer groups.

Layout (prefix ``P``): ``P:jobs`` holds jobs in flight (group ``workers``; an
entry is deleted once retired), ``P:results`` holds final events (group
``producers``; deleted once acknowledged), ``P:progress`` is a capped stream of
partial text, ``P:dead`` keeps dead-lettered jobs, ``P:job-entries`` maps job id
to entry id, and ``P:session:<id>`` holds a session's job in flight (with a TTL).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from redis.exceptions import RedisError
from redis.typing import KeyT, StreamIdT

from engine.queue.config import QueueConfig
from engine.queue.errors import QueueClosed, QueueFull, QueueUnavailable, SessionBusy
from engine.queue.interfaces import Delivery, JobQueue, WorkerQueue
from engine.queue.jobs import (
    GenerationJob,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgress,
    MalformedRequest,
    WireFormatError,
    decode_event,
    decode_job,
    encode_event,
    encode_job,
)
from engine.queue.redis_connection import PRODUCERS_GROUP, WORKERS_GROUP, RedisConnection
from engine.telemetry.metrics import QUEUE_ERRORS

log = logging.getLogger(__name__)

_READ_COUNT = 100
_RECENTLY_FINISHED = 1000
# A cancelled job is done with long before this; the mark only needs to outlive it.
CANCEL_MARK_TTL_S = 3600
StreamEntry = tuple[str, dict[str, str]]


def _entries(response: Any) -> list[tuple[str, list[StreamEntry]]]:
    """Normalise an XREADGROUP reply (RESP2 list or RESP3 dict) to (stream, entries) pairs."""
    if not response:
        return []
    if isinstance(response, dict):
        return [(stream, list(entries)) for stream, entries in response.items()]
    return [(stream, list(entries)) for stream, entries in response]


class RedisJobQueue(JobQueue):
    """Producer end: enqueue jobs and read their events through the ``producers`` group."""

    def __init__(self, url: str, config: QueueConfig | None = None) -> None:
        self.config = config or QueueConfig()
        self._redis = RedisConnection(url, self.config)
        self._keys = self._redis.keys
        self._receipts: dict[str, set[str]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._closed = False

    @classmethod
    async def connect(cls, url: str, config: QueueConfig | None = None) -> RedisJobQueue:
        """Open the producer end, raising QueueUnavailable when Redis does not answer."""
        queue = cls(url, config)
        try:
            await queue._redis.open()
            with queue._redis.reachable():
                # Partial text from before a restart is stale; start from now.
                await queue._redis.client.xgroup_setid(queue._keys.progress, PRODUCERS_GROUP, "$")
        except BaseException:
            await queue._redis.close()
            raise
        return queue

    async def enqueue(self, job: GenerationJob) -> int:
        """Queue a job and return its position (1 = next)."""
        if self._closed:
            raise QueueClosed()
        keys = self._keys
        with self._redis.reachable():
            outcome, value = await self._redis.enqueue_script(
                keys=[keys.jobs, keys.job_entries, keys.session_slot(job.session_id)],
                args=[
                    job.job_id,
                    self.config.max_in_flight,
                    int(self.config.session_slot_ttl_s * 1000),
                    encode_job(job),
                    WORKERS_GROUP,
                ],
            )
        if outcome == "busy":
            raise SessionBusy(job.session_id, str(value))
        if outcome == "full":
            raise QueueFull(int(value), self.config.max_in_flight)
        log.debug("queued job %s for session %d", job.job_id, job.session_id)
        return max(int(value), 1)

    async def position(self, job_id: str) -> int | None:
        """Return the job's position: 1 = next, 0 = being generated, None = not queued."""
        with self._redis.reachable():
            found = await self._redis.position_script(
                keys=[self._keys.jobs, self._keys.job_entries], args=[job_id, WORKERS_GROUP]
            )
        return None if int(found) < 0 else int(found)

    async def events(self) -> AsyncIterator[JobEvent]:
        """Yield progress and final events until the queue is closed."""
        read_from = "0"  # this consumer's unacknowledged results first, then new ones
        outages = 0
        offered_at = time.monotonic()
        while not self._closed:
            if read_from == ">" and time.monotonic() - offered_at >= self.config.redeliver_s:
                # Events are handled one at a time, so results still pending for us now
                # could not be stored (or acknowledged): read them again.
                read_from = "0"
                offered_at = time.monotonic()
            try:
                batch = await self._read(read_from)
            except QueueUnavailable as error:
                if self._closed:
                    return
                outages += 1
                log.warning("cannot read queue events (%s); retrying", error)
                await asyncio.sleep(min(5.0, 0.1 * 2**outages))
                read_from = "0"  # replies lost in transit are still in our pending list
                continue
            outages = 0
            if read_from != ">":
                read_from = batch[-1][1] if batch else ">"
            for stream, entry_id, fields in batch:
                event = await self._accept(stream, entry_id, fields)
                if event is not None:
                    yield event

    async def cancel(self, job_id: str) -> None:
        """Mark the job cancelled for the workers (the mark expires after an hour)."""
        with self._redis.reachable():
            await self._redis.client.set(
                self._keys.cancelled(job_id), "1", ex=CANCEL_MARK_TTL_S
            )

    async def ack(self, event: JobEvent) -> None:
        """Acknowledge a stored final event and free its session's slot."""
        if isinstance(event, JobProgress):
            return
        receipts = self._receipts.pop(event.job_id, set())
        with self._redis.reachable():
            await self._redis.ack_script(
                keys=[self._keys.results, self._keys.session_slot(event.session_id)],
                args=[PRODUCERS_GROUP, event.job_id, *sorted(receipts)],
            )

    async def close(self) -> None:
        """Close the connection; pending iterations of events() end."""
        self._closed = True
        await self._redis.close()

    async def _read(self, read_from: str) -> list[tuple[str, str, dict[str, str]]]:
        keys = self._keys
        name = self.config.producer_name
        client = self._redis.client
        if read_from == ">":
            streams: dict[KeyT, StreamIdT] = {keys.results: ">", keys.progress: ">"}
            block_ms = max(1, int(self.config.block_s * 1000))

            async def read() -> Any:
                return await client.xreadgroup(
                    PRODUCERS_GROUP, name, streams, count=_READ_COUNT, block=block_ms
                )
        else:

            async def read() -> Any:
                return await client.xreadgroup(
                    PRODUCERS_GROUP, name, {keys.results: read_from}, count=_READ_COUNT
                )

        response = await self._redis.with_groups(read)
        batch = [
            (stream, entry_id, fields or {})
            for stream, entries in _entries(response)
            for entry_id, fields in entries
        ]
        progress_ids = [entry_id for stream, entry_id, _ in batch if stream == keys.progress]
        if progress_ids:
            with self._redis.reachable():
                await client.xack(keys.progress, PRODUCERS_GROUP, *progress_ids)
        return batch

    async def _accept(self, stream: str, entry_id: str, fields: dict[str, str]) -> JobEvent | None:
        try:
            event = decode_event(fields["event"])
        except (KeyError, WireFormatError) as error:
            if fields:  # empty fields: the entry was trimmed away while pending
                QUEUE_ERRORS.labels("unreadable").inc()
                log.error("dropping unreadable queue event %s %r: %s", entry_id, fields, error)
            if stream == self._keys.results:
                with self._redis.reachable():
                    await self._redis.client.xack(stream, PRODUCERS_GROUP, entry_id)
            return None
        if isinstance(event, JobProgress):
            return None if event.job_id in self._finished else event
        self._receipts.setdefault(event.job_id, set()).add(entry_id)
        self._finished[event.job_id] = None
        if len(self._finished) > _RECENTLY_FINISHED:
            self._finished.popitem(last=False)
        return event


def default_worker_name() -> str:
    """Return a consumer name unique to this worker process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(2)}"


class RedisWorkerQueue(WorkerQueue):
    """Worker end: take jobs through the ``workers`` group and keep claims alive."""

    def __init__(self, url: str, config: QueueConfig | None = None) -> None:
        self.config = config or QueueConfig()
        self.name = self.config.worker_name or default_worker_name()
        self._redis = RedisConnection(url, self.config)
        self._keys = self._redis.keys
        self._running: dict[str, Delivery] = {}
        self._claim_cursor = "0-0"
        self._heartbeat: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def connect(cls, url: str, config: QueueConfig | None = None) -> RedisWorkerQueue:
        """Open the worker end, raising QueueUnavailable when Redis does not answer."""
        queue = cls(url, config)
        try:
            await queue._redis.open()
        except BaseException:
            await queue._redis.close()
            raise
        return queue

    async def fetch(self, max_jobs: int, wait_s: float) -> list[Delivery]:
        """Take up to max_jobs jobs, waiting up to wait_s for the first one."""
        if self._heartbeat is None and not self._closed:
            self._heartbeat = asyncio.create_task(self._renew_claims_forever())
        deadline = time.monotonic() + wait_s
        while not self._closed:
            block_s = min(self.config.block_s, deadline - time.monotonic())
            try:
                deliveries = await self._take(max_jobs, block_s)
            except QueueUnavailable:
                if self._closed:  # close() cut a blocking read short
                    break
                raise
            if deliveries or time.monotonic() >= deadline:
                return deliveries
        raise QueueClosed()

    async def complete(
        self, delivery: Delivery, text: str, meta: Mapping[str, Any] | None = None
    ) -> bool:
        """Publish the job's text and retire it; False when the job was no longer ours."""
        job = delivery.job
        event = JobCompleted(job.job_id, job.session_id, job.kind, text, dict(meta or {}))
        return await self._finish(delivery, encode_event(event))

    async def fail(self, delivery: Delivery, reason: str, *, retry: bool = True) -> None:
        """Give the job back for a retry, or fail it for good after max_deliveries."""
        job = delivery.job
        if retry and delivery.delivery_count < self.config.max_deliveries:
            # Reset the idle clock so the retry waits one full visibility timeout.
            try:
                await self._renew([delivery.entry_id])
            finally:
                self._running.pop(delivery.entry_id, None)
            log.info(
                "job %s failed on delivery %d (%s); it will be retried",
                job.job_id,
                delivery.delivery_count,
                reason,
            )
            return
        await self._fail_for_good(delivery, reason, dead_letter=retry)

    async def progress(self, delivery: Delivery, text: str) -> None:
        """Publish partial text of a running job (best-effort: errors are logged)."""
        if delivery.entry_id not in self._running:
            return
        job = delivery.job
        event = encode_event(JobProgress(job.job_id, job.session_id, text))
        try:
            with self._redis.reachable():
                await self._redis.client.xadd(
                    self._keys.progress,
                    {"event": event},
                    maxlen=self.config.progress_maxlen,
                    approximate=True,
                )
        except (QueueUnavailable, RedisError) as error:
            log.warning("could not publish progress of job %s: %s", job.job_id, error)

    async def cancelled(self, job_ids: Sequence[str]) -> set[str]:
        """Return which of JOB_IDS producers cancelled (one round trip)."""
        if not job_ids:
            return set()
        with self._redis.reachable():
            marks = await self._redis.client.mget([self._keys.cancelled(j) for j in job_ids])
        return {job_id for job_id, mark in zip(job_ids, marks, strict=True) if mark}

    async def release(self, deliveries: Sequence[Delivery]) -> None:
        """Hand unfinished jobs back so another worker can take them at once."""
        owned = [d for d in deliveries if self._running.pop(d.entry_id, None) is not None]
        if not owned:
            return
        idle_ms = int(self.config.visibility_timeout * 1000) + 1
        pairs = [str(part) for d in owned for part in (d.entry_id, d.delivery_count - 1)]
        with self._redis.reachable():
            await self._redis.release_script(
                keys=[self._keys.jobs], args=[WORKERS_GROUP, self.name, idle_ms, *pairs]
            )
        log.info("released %d unfinished job(s)", len(owned))

    async def close(self) -> None:
        """Stop renewing claims, hand back unfinished jobs and close the connection."""
        if self._closed:
            return
        self._closed = True
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        try:
            await self.release(list(self._running.values()))
        except (QueueUnavailable, RedisError) as error:
            log.warning("could not hand back unfinished jobs on close: %s", error)
        await self._redis.close()

    async def _take(self, max_jobs: int, block_s: float) -> list[Delivery]:
        claimed = await self._claim_abandoned(max_jobs)
        fresh: list[tuple[str, dict[str, str], int]] = []
        if len(claimed) < max_jobs:
            block_ms = None if claimed or block_s <= 0 else max(1, int(block_s * 1000))
            client = self._redis.client

            async def read() -> Any:
                return await client.xreadgroup(
                    WORKERS_GROUP,
                    self.name,
                    {self._keys.jobs: ">"},
                    count=max_jobs - len(claimed),
                    block=block_ms,
                )

            response = await self._redis.with_groups(read)
            fresh = [
                (entry_id, fields or {}, 1)
                for _, entries in _entries(response)
                for entry_id, fields in entries
            ]
        deliveries = []
        for entry_id, fields, count in claimed + fresh:
            delivery = await self._accept(entry_id, fields, count)
            if delivery is not None:
                deliveries.append(delivery)
        return deliveries

    async def _claim_abandoned(self, max_jobs: int) -> list[tuple[str, dict[str, str], int]]:
        """Take over jobs whose workers went silent for a visibility timeout."""
        client = self._redis.client
        min_idle_ms = int(self.config.visibility_timeout * 1000)

        async def autoclaim() -> Any:
            return await client.xautoclaim(
                self._keys.jobs,
                WORKERS_GROUP,
                self.name,
                min_idle_ms,
                start_id=self._claim_cursor,
                count=max_jobs,
            )

        reply = await self._redis.with_groups(autoclaim)
        self._claim_cursor, entries = reply[0], reply[1]
        if not entries:
            return []
        with self._redis.reachable():
            pipe = client.pipeline(transaction=False)
            for entry_id, _ in entries:
                pipe.xpending_range(self._keys.jobs, WORKERS_GROUP, entry_id, entry_id, 1)
            pending = await pipe.execute()
        claimed = []
        for (entry_id, fields), info in zip(entries, pending, strict=True):
            count = int(info[0]["times_delivered"]) if info else 1
            log.info("took over job entry %s from a silent worker (delivery %d)", entry_id, count)
            claimed.append((entry_id, fields or {}, count))
        return claimed

    async def _accept(
        self, entry_id: str, fields: dict[str, str], delivery_count: int
    ) -> Delivery | None:
        try:
            job = decode_job(fields["job"])
        except MalformedRequest as error:
            # Named, so the producer hears of it and frees the story; a retry would fail alike.
            log.error("failing job entry %s without retry: %s", entry_id, error)
            reason = f"JobRejected: {error.reason}"
            event = JobFailed(error.job_id, error.session_id, error.kind, reason, False)
            await self._run_finish(
                entry_id,
                error.job_id,
                encode_event(event),
                "",
                reason,
                delivery_count,
                session_id=error.session_id,
            )
            return None
        except (KeyError, WireFormatError) as error:
            QUEUE_ERRORS.labels("unreadable").inc()
            log.error("dead-lettering unreadable job entry %s: %s", entry_id, error)
            await self._run_finish(
                entry_id, "", "", json.dumps(fields), f"unreadable job: {error}", delivery_count
            )
            return None
        delivery = Delivery(job, delivery_count, entry_id)
        if delivery_count > self.config.max_deliveries:
            reason = (
                f"gave up after {delivery_count - 1} deliveries: "
                "the worker stopped or timed out each time"
            )
            self._running[entry_id] = delivery
            await self._fail_for_good(delivery, reason, dead_letter=True)
            return None
        self._running[entry_id] = delivery
        return delivery

    async def _fail_for_good(self, delivery: Delivery, reason: str, *, dead_letter: bool) -> None:
        job = delivery.job
        event = JobFailed(job.job_id, job.session_id, job.kind, reason, dead_letter)
        if dead_letter:
            log.warning(
                "job %s dead-lettered after %d deliveries: %s",
                job.job_id,
                delivery.delivery_count,
                reason,
            )
        else:
            log.warning("job %s failed without retry: %s", job.job_id, reason)
        await self._finish(delivery, encode_event(event), dead_letter=dead_letter, reason=reason)

    async def _finish(
        self, delivery: Delivery, event_json: str, *, dead_letter: bool = False, reason: str = ""
    ) -> bool:
        job = delivery.job
        dead_job = encode_job(job) if dead_letter else ""
        try:
            done = await self._run_finish(
                delivery.entry_id,
                job.job_id,
                event_json,
                dead_job,
                reason,
                delivery.delivery_count,
                session_id=job.session_id,
            )
        finally:
            # Also on an outage: stop renewing, so the job is retried after the timeout.
            self._running.pop(delivery.entry_id, None)
        if done == 0:
            log.warning(
                "job %s is another worker's now (taken over, or queued again); dropping our result",
                job.job_id,
            )
        elif done == 2:
            log.warning(
                "the queue no longer held job %s (Redis lost its data, or another worker "
                "finished it); its outcome was published anyway",
                job.job_id,
            )
        return done != 0

    async def _run_finish(
        self,
        entry_id: str,
        job_id: str,
        event_json: str,
        dead_job: str,
        reason: str,
        delivery_count: int,
        *,
        session_id: int | None = None,
    ) -> int:
        keys = self._keys
        # An unreadable job names no session; -1 is a slot that never holds a job.
        slot = keys.session_slot(-1 if session_id is None else session_id)
        with self._redis.reachable():
            done = await self._redis.finish_script(
                keys=[keys.jobs, keys.results, keys.job_entries, slot, keys.dead],
                args=[
                    WORKERS_GROUP,
                    self.name,
                    entry_id,
                    job_id,
                    event_json,
                    dead_job,
                    reason,
                    delivery_count,
                ],
            )
        return int(done)

    async def _renew(self, entry_ids: list[str]) -> list[str]:
        with self._redis.reachable():
            kept = await self._redis.renew_script(
                keys=[self._keys.jobs], args=[WORKERS_GROUP, self.name, *entry_ids]
            )
        return [str(entry_id) for entry_id in kept]

    async def _renew_claims_forever(self) -> None:
        """Renew claims on running jobs every heartbeat so they are not taken over."""
        while True:
            await asyncio.sleep(self.config.heartbeat_s)
            entry_ids = list(self._running)
            if not entry_ids:
                continue
            try:
                kept = set(await self._renew(entry_ids))
            except (QueueUnavailable, RedisError) as error:
                log.warning("could not renew claims on running jobs: %s", error)
                continue
            for entry_id in entry_ids:
                lost = self._running.get(entry_id) if entry_id not in kept else None
                if lost is not None:
                    log.warning(
                        "job %s is no longer ours to renew (taken over by another worker, "
                        "or the queue lost it)",
                        lost.job.job_id,
                    )
                    del self._running[entry_id]
