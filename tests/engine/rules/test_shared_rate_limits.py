"""With Redis, every bot process enforces one rate limit; in-process stays the default."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio
from prometheus_client import REGISTRY

from engine.rules.guard import RateLimited, Where
from engine.rules.rate_limiters import RedisWindow
from engine.rules.throttles import RateLimits, Throttles

from conftest import service_missing

REDIS_URL = os.environ.get("TALEWEAVER_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
ALICE_HERE = Where(guild_id=1, channel_id=10, user_id=7)


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        service_missing(f"Redis at {REDIS_URL}", exc)
    name = f"taleweaver-limits:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(match=f"{name}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def _refusals(rule: str) -> float:
    return REGISTRY.get_sample_value("taleweaver_rate_limit_refusals_total", {"rule": rule}) or 0.0


async def test_two_bot_processes_share_one_limit(prefix: str) -> None:
    limits = RateLimits(turns_per_minute=3, commands_per_minute=2)
    first = Throttles.shared(REDIS_URL, limits, prefix=prefix)
    second = Throttles.shared(REDIS_URL, limits, prefix=prefix)
    refused_before = _refusals("rate:turns")
    try:
        await first.turn(ALICE_HERE)
        await second.turn(ALICE_HERE)
        await first.turn(ALICE_HERE)
        with pytest.raises(RateLimited, match=r"too quickly\. Try again in (5\d|60) s") as caught:
            await second.turn(ALICE_HERE)
        assert caught.value.rule == "rate:turns"
        assert _refusals("rate:turns") == refused_before + 1
        # Another member, and another kind of action, have their own counts.
        await second.turn(Where(guild_id=1, channel_id=10, user_id=8))
        await first.command(ALICE_HERE)
        await second.command(ALICE_HERE)
        with pytest.raises(RateLimited):
            await first.command(ALICE_HERE)
    finally:
        await first.close()
        await second.close()


async def test_in_process_throttles_do_not_share(prefix: str) -> None:
    limits = RateLimits(narrations_per_minute=1)
    first, second = Throttles(limits), Throttles(limits)
    await first.narration(ALICE_HERE)
    await second.narration(ALICE_HERE)
    with pytest.raises(RateLimited):
        await first.narration(ALICE_HERE)


async def test_the_redis_window_slides_and_refused_hits_do_not_count(prefix: str) -> None:
    client = redis.asyncio.Redis.from_url(REDIS_URL)
    window = RedisWindow(client, f"{prefix}:rate:test", limit=2, per_seconds=0.5)
    try:
        assert await window.hit("k") is None
        assert await window.hit("k") is None
        wait = await window.hit("k")
        assert wait is not None and 0 < wait <= 0.5
        await asyncio.sleep(wait + 0.05)
        assert await window.hit("k") is None, "waiting the answer lets one in"
        assert await window.hit("other") is None
    finally:
        await client.aclose()


async def test_an_unreachable_redis_lets_actions_through() -> None:
    throttles = Throttles.shared("redis://127.0.0.1:1/0", RateLimits(turns_per_minute=1))
    try:
        await throttles.turn(ALICE_HERE)
        await throttles.turn(ALICE_HERE)
    finally:
        await throttles.close()
