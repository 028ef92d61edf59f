"""Opening queue ends by URL."""

from __future__ import annotations

import time

import pytest

from engine.queue import (
    MemoryQueue,
    QueueUnavailable,
    RedisJobQueue,
    RedisWorkerQueue,
    open_queue,
    open_worker_queue,
)


async def test_memory_url_gives_one_in_process_queue_for_both_ends():
    producer = await open_queue("memory://factory-test", max_in_flight=4)
    worker = await open_worker_queue("memory://factory-test")
    try:
        assert isinstance(producer, MemoryQueue)
        assert worker is producer
        assert producer.config.max_in_flight == 4
    finally:
        await producer.close()
    reopened = await open_queue("memory://factory-test")
    assert reopened is not producer
    await reopened.close()


async def test_memory_url_reopened_with_other_limits_is_refused():
    queue = await open_queue("memory://factory-limits", max_in_flight=4)
    try:
        with pytest.raises(ValueError, match="different limits"):
            await open_worker_queue("memory://factory-limits", max_in_flight=5)
    finally:
        await queue.close()


@pytest.mark.parametrize("url", ["amqp://localhost", "localhost:6379", "sqlite:///x.db"])
async def test_unsupported_url_is_refused_with_the_supported_schemes(url):
    with pytest.raises(ValueError, match=r"use memory:// .*redis://host:6379/0"):
        await open_queue(url)


async def test_unknown_limit_is_refused():
    with pytest.raises(TypeError, match="max_inflight"):
        await open_queue("memory://factory-typo", max_inflight=3)


async def test_unreachable_redis_raises_queue_unavailable_naming_the_url():
    started = time.monotonic()
    with pytest.raises(QueueUnavailable) as unavailable:
        await open_queue("redis://:s3cret@127.0.0.1:1/0")

    message = str(unavailable.value)
    assert "redis://:***@127.0.0.1:1/0" in message
    assert "Check that Redis is running" in message
    assert "s3cret" not in message
    assert time.monotonic() - started < 10


async def test_redis_url_opens_redis_ends(redis_url, key_prefix):
    producer = await open_queue(redis_url, key_prefix=key_prefix)
    worker = await open_worker_queue(redis_url, key_prefix=key_prefix, worker_name="w1")
    try:
        assert isinstance(producer, RedisJobQueue)
        assert isinstance(worker, RedisWorkerQueue)
        assert worker.name == "w1"
    finally:
        await producer.close()
        await worker.close()
