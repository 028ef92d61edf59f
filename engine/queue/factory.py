"""Open a queue end from a URL: ``memory://[name]``, ``redis://…`` or ``rediss://…``."""

from __future__ import annotations

import logging
from typing import Any

from engine.queue.config import QueueConfig
from engine.queue.inspection import MemoryQueueInspector, QueueInspector, RedisQueueInspector
from engine.queue.interfaces import JobQueue, WorkerQueue
from engine.queue.memory_queue import MemoryQueue
from engine.queue.redis_queue import RedisJobQueue, RedisWorkerQueue

log = logging.getLogger(__name__)

# memory:// queues are shared by URL, so the producer and the in-process worker
# opened from the same setting meet in one object.
_memory_queues: dict[str, MemoryQueue] = {}


async def open_queue(url: str, **limits: Any) -> JobQueue:
    """Open the producer end for a queue URL; keyword arguments are QueueConfig fields."""
    config = QueueConfig(**limits)
    if _scheme(url) == "memory":
        return _shared_memory_queue(url, config, configured=bool(limits))
    return await RedisJobQueue.connect(url, config)


async def open_worker_queue(url: str, **limits: Any) -> WorkerQueue:
    """Open the worker end for a queue URL; keyword arguments are QueueConfig fields."""
    config = QueueConfig(**limits)
    if _scheme(url) == "memory":
        return _shared_memory_queue(url, config, configured=bool(limits))
    return await RedisWorkerQueue.connect(url, config)


def open_inspector(url: str, **limits: Any) -> QueueInspector:
    """Return a read-only inspector for a queue URL (a memory:// queue of this process only)."""
    config = QueueConfig(**limits)
    if _scheme(url) == "memory":
        return MemoryQueueInspector(url, _memory_queues.get(url))
    return RedisQueueInspector(url, config)


def _scheme(url: str) -> str:
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme not in ("memory", "redis", "rediss"):
        raise ValueError(
            f"unsupported queue URL {scheme + '://…' if scheme else repr(url)}: use memory:// "
            "(in-process), redis://host:6379/0 or rediss://host:6380/0"
        )
    return scheme


def _shared_memory_queue(url: str, config: QueueConfig, *, configured: bool) -> MemoryQueue:
    queue = _memory_queues.get(url)
    if queue is None:
        queue = MemoryQueue(config, on_close=lambda: _forget_memory_queue(url))
        _memory_queues[url] = queue
        log.info("using the in-process job queue %s", url)
    elif configured and queue.config != config:
        raise ValueError(f"{url} is already open with different limits: {queue.config}")
    return queue


def _forget_memory_queue(url: str) -> None:
    _memory_queues.pop(url, None)
