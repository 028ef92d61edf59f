"""Read a memory queue's final events in tests."""

from __future__ import annotations

import asyncio

from engine.queue import JobCompleted, MemoryQueue


async def completed_events(
    queue: MemoryQueue, count: int, seconds: float = 20.0
) -> list[JobCompleted]:
    """Acknowledge and return the queue's next COUNT completed events, within SECONDS."""
    received: list[JobCompleted] = []
    async with asyncio.timeout(seconds):
        async for event in queue.events():
            if isinstance(event, JobCompleted):
                received.append(event)
                await queue.ack(event)
                if len(received) == count:
                    break
    return received
