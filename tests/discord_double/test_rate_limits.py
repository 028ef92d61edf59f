"""The double's rate limits: real buckets and headers, which discord.py's own handling obeys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from discord_double import DiscordDouble
from discord_double.models import DoubleChannel
from discord_double.rate_limits import BucketRule, RateLimiter
from discord_double.story_bot import StoryBot

POST = "POST /channels/{channel_id}/messages"
PATCH = "PATCH /channels/{channel_id}/messages/{message_id}"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_counts_down_per_channel_and_refuses_beyond_its_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, wall_clock=lambda: 1_700_000_000.0)
    template = POST.split(" ", 1)[1]
    seen = [limiter.take("POST", template, {"channel_id": "1"}) for _ in range(5)]
    assert [v.headers["X-RateLimit-Remaining"] for v in seen] == ["4", "3", "2", "1", "0"]
    assert {v.headers["X-RateLimit-Bucket"] for v in seen} == {
        seen[0].headers["X-RateLimit-Bucket"]
    }
    assert seen[0].headers["X-RateLimit-Limit"] == "5"
    assert seen[0].headers["X-RateLimit-Reset-After"] == "5.000"
    assert seen[0].headers["X-RateLimit-Reset"] == "1700000005.000"

    clock.now += 2.0
    refused = limiter.take("POST", template, {"channel_id": "1"})
    assert refused.refusal == {
        "message": "You are being rate limited.",
        "retry_after": 3.0,
        "global": False,
    }
    assert refused.headers["Retry-After"] == "3" and refused.headers["X-RateLimit-Scope"] == "user"
    # Another channel is another bucket; the first one opens again when its window ends.
    assert not limiter.take("POST", template, {"channel_id": "2"}).refused
    clock.now += 3.0
    assert (
        limiter.take("POST", template, {"channel_id": "1"}).headers["X-RateLimit-Remaining"] == "4"
    )


def test_the_global_limit_spans_routes_but_not_interactions() -> None:
    clock = Clock()
    limiter = RateLimiter(clock=clock, global_limit=3)
    for channel in ("1", "2", "3"):
        assert not limiter.take(
            "POST", "/channels/{channel_id}/messages", {"channel_id": channel}
        ).refused
    refused = limiter.take("GET", "/users/@me", {})
    assert refused.refusal is not None and refused.refusal["global"] is True
    assert refused.headers["X-RateLimit-Global"] == "true"
    hook = {"webhook_id": "9", "webhook_token": "t"}
    assert not limiter.take("POST", "/webhooks/{webhook_id}/{webhook_token}", hook).refused
    callback = {"interaction_id": "8", "interaction_token": "t"}
    answer = limiter.take(
        "POST", "/interactions/{interaction_id}/{interaction_token}/callback", callback
    )
    assert not answer.refused and answer.headers == {}
    clock.now += 1.0
    assert not limiter.take("GET", "/users/@me", {}).refused


@pytest.fixture
async def bot(discord_double: DiscordDouble) -> AsyncIterator[StoryBot]:
    client = StoryBot(discord_double.guild.guild_id)
    async with discord_double.run_client(client):
        yield client


async def test_discord_py_waits_for_a_spent_bucket_instead_of_running_into_429(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    template = POST.split(" ", 1)[1]
    discord_double.rate_limiter = RateLimiter(
        buckets={("POST", template): BucketRule("message-create", 2, 0.5)}
    )
    channel = bot.get_partial_messageable(discord_double.channels["story"].id)
    for number in range(5):
        await channel.send(f"Line {number}")
    posts = discord_double.requests_to(POST)
    assert [r.status for r in posts] == [200] * 5, "no 429: the headers were obeyed"
    # Two posts per half-second window: the third and the fifth waited for a reset.
    assert posts[2].at - posts[0].at >= 0.45
    assert posts[4].at - posts[2].at >= 0.45


async def test_a_global_429_is_waited_out_and_the_requests_retried(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    world = discord_double.world
    channels = [
        world.add_channel(DoubleChannel(discord_double.ids.next(), f"c{n}", 0, world.guild_id))
        for n in range(6)
    ]
    discord_double.rate_limiter = RateLimiter(global_limit=3)
    await asyncio.gather(*(bot.get_partial_messageable(c.id).send("Hello") for c in channels))
    statuses = [r.status for r in discord_double.requests_to(POST)]
    assert statuses.count(200) == 6 and 429 in statuses
    assert all(discord_double.messages_in(c) for c in channels)


async def test_an_injected_429_on_edits_is_retried(
    discord_double: DiscordDouble, bot: StoryBot
) -> None:
    channel = bot.get_partial_messageable(discord_double.channels["story"].id)
    sent = await channel.send("Draft")
    discord_double.rate_limit(PATCH, retry_after=0.2, is_global=True)
    edited = await sent.edit(content="Final")
    assert edited.content == "Final"
    assert [r.status for r in discord_double.requests_to(PATCH)] == [429, 200]


async def test_answers_carry_the_bucket_headers_and_a_429_says_when_to_retry(
    discord_double: DiscordDouble,
) -> None:
    discord_double.rate_limiter = RateLimiter(global_limit=2)
    url = f"{discord_double.base_url}/api/v10/users/@me"
    auth = {"Authorization": f"Bot {discord_double.token}"}
    async with aiohttp.ClientSession() as session:
        answers = []
        for _ in range(3):
            async with session.get(url, headers=auth) as response:
                answers.append((response.status, dict(response.headers), await response.json()))
    (first, headers, _), (_, second, _), (third, refused, body) = answers
    assert (first, third) == (200, 429)
    assert headers["X-RateLimit-Limit"] == "50" and headers["X-RateLimit-Remaining"] == "49"
    assert second["X-RateLimit-Remaining"] == "48"
    assert headers["X-RateLimit-Bucket"] == second["X-RateLimit-Bucket"]
    assert float(headers["X-RateLimit-Reset-After"]) <= 1.0
    assert body["global"] is True and 0 < body["retry_after"] <= 1.0
    assert refused["X-RateLimit-Scope"] == "global" and refused["Retry-After"] == "1"
