"""Finding out that a player left the server, and what the bot then says."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord.departures import Departures, departure_notice
from engine.story.views import DepartureOutcome
from storage.models import ParticipantStatus

from support.stories import ALICE, BOB, CARA, GUILD, started


def http_error(cls: type[discord.HTTPException], status: int, code: int) -> discord.HTTPException:
    return cls(SimpleNamespace(status=status, reason="refused"), {"code": code, "message": "x"})


class FakeGuild:
    """A server whose members are looked up one by one, as without the members intent."""

    def __init__(self, *, cached: set[int] = frozenset(), answer: Exception | None = None) -> None:
        self.cached = cached
        self.answer = answer
        self.fetched: list[int] = []

    def get_member(self, user_id: int) -> object | None:
        return object() if user_id in self.cached else None

    async def fetch_member(self, user_id: int) -> object:
        self.fetched.append(user_id)
        if self.answer is not None:
            raise self.answer
        return object()


def departures_on(guild: FakeGuild | None, channel: Any = None) -> Departures:
    client = SimpleNamespace(get_guild=lambda _: guild)

    async def resolve(channel_id: int) -> Any:
        return channel

    return Departures(client, resolve, via_messages=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("guild", "expected", "looked_up"),
    [
        pytest.param(None, True, False, id="server-not-cached"),
        pytest.param(FakeGuild(cached={ALICE.user_id}), True, False, id="member-cached"),
        pytest.param(FakeGuild(), True, True, id="found-by-lookup"),
        pytest.param(
            FakeGuild(answer=http_error(discord.NotFound, 404, 10007)),
            False,
            True,
            id="unknown-member",
        ),
        pytest.param(
            FakeGuild(answer=http_error(discord.NotFound, 404, 10013)),
            False,
            True,
            id="unknown-user",
        ),
        pytest.param(
            FakeGuild(answer=http_error(discord.HTTPException, 500, 0)),
            True,
            True,
            id="discord-failing-is-no-departure",
        ),
        pytest.param(
            FakeGuild(answer=http_error(discord.Forbidden, 403, 50001)),
            True,
            True,
            id="no-access-is-no-departure",
        ),
    ],
)
async def test_only_unknown_member_counts_as_left(
    guild: FakeGuild | None, expected: bool, looked_up: bool
) -> None:
    departures = departures_on(guild)
    assert await departures.is_member(GUILD, ALICE.user_id) is expected
    assert (guild is not None and guild.fetched == [ALICE.user_id]) is looked_up


async def test_a_turn_for_someone_who_left_passes_on_with_a_notice_pinging_the_next(
    story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB, CARA)
    channel = fake.Channel()
    departures = departures_on(FakeGuild(answer=http_error(discord.NotFound, 404, 10007)), channel)
    departures.bind(story_db.story)
    await departures.prompt_turn(channel, view)
    [notice] = channel.sent
    assert notice.content.startswith(
        "🚪 Alice is no longer on this server, so they are away and their turn passes on; "
        "they can `/story join` again if they come back. ✒️ <@2>, it's your turn."
    )
    [allowed] = [kwargs["allowed_mentions"] for kwargs in channel.send_kwargs]
    assert [user.id for user in allowed.users] == [BOB.user_id]
    now = await story_db.story.queries.get(view.id)
    assert now.current_player is not None and now.current_player.user_id == BOB.user_id
    assert next(p for p in now.participants if p.user_id == ALICE.user_id).status == (
        ParticipantStatus.AWAY
    )


async def test_a_present_player_is_pinged_as_always(
    story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    channel = fake.Channel()
    departures = departures_on(FakeGuild(), channel)
    departures.bind(story_db.story)
    await departures.prompt_turn(channel, view)
    [ping] = channel.sent
    assert ping.content.startswith("✒️ <@1>, it's your turn.")


def test_the_notice_says_when_nobody_is_left(fake: SimpleNamespace) -> None:
    alice = fake.participant(1, 1, "Alice", ParticipantStatus.AWAY)
    session = fake.session_view(players=(alice,), status="paused")
    outcome = DepartureOutcome(session=session, departed=alice, had_turn=True)
    assert departure_notice(outcome) == (
        "🚪 Alice is no longer on this server, so they are away and their turn passes on; "
        "they can `/story join` again if they come back. Nobody is left, so the story pauses "
        "until someone joins."
    )
