"""Races that the database must decide: one turn N, one open story per channel."""

from __future__ import annotations

import asyncio

from engine.errors import InvalidState, NotYourTurn, StoryError
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from storage.models import NarratorCadence

from support.stories import ALICE, BOB, CARA, GUILD, MOD, started


async def test_two_messages_at_once_never_both_become_turn_n(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    for round_number in range(5):
        writer = ALICE if round_number % 2 == 0 else BOB
        results = await asyncio.gather(
            service.turns.submit_turn(view.channel_id, writer, "first copy"),
            service.turns.submit_turn(view.channel_id, writer, "second copy"),
            return_exceptions=True,
        )
        stored = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(stored) == 1, results
        assert len(refused) == 1 and isinstance(refused[0], NotYourTurn), refused
    turns = await service.queries.turns(view.id)
    assert [t.number for t in turns] == [1, 2, 3, 4, 5]
    assert [t.author_name for t in turns] == ["Alice", "Bob", "Alice", "Bob", "Alice"]


async def test_two_starts_in_one_channel_yield_one_story(service: StoryService) -> None:
    for channel in range(500, 505):
        results = await asyncio.gather(
            *(
                service.lifecycle.start(
                    guild_id=GUILD, channel_id=channel, actor=actor, title="Race", genre="mystery"
                )
                for actor in (ALICE, BOB, CARA)
            ),
            return_exceptions=True,
        )
        started_views = [r for r in results if not isinstance(r, BaseException)]
        refusals = [r for r in results if isinstance(r, BaseException)]
        assert len(started_views) == 1, results
        assert all(isinstance(r, InvalidState) for r in refusals), refusals
    assert len(await service.queries.list_sessions(GUILD)) == 5


async def test_turn_and_timeout_racing_leave_a_consistent_rotation(
    service: StoryService, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, turn_timeout_seconds=60
    )
    view = await started(service, ALICE, BOB, CARA)
    clock.advance(61)
    results = await asyncio.gather(
        service.turns.submit_turn(view.channel_id, ALICE, "Just in time?"),
        service.deadlines.expire_overdue(),
        return_exceptions=True,
    )
    assert not any(
        isinstance(r, BaseException) and not isinstance(r, StoryError) for r in results
    ), results
    after = await service.queries.get(view.id)
    assert after.current_player is not None
    # Either the turn won (Bob is next) or the timeout won (Bob is next and nothing stored).
    assert after.current_player.user_id == BOB.user_id
    assert after.turn_count in (0, 1)
