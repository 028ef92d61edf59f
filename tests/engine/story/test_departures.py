"""Stories meeting the world outside them: members who leave the server, deleted channels,
a bot removed from a server, messages read twice, and titles checked before a thread."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import AlreadyRecorded, NotYourTurn, PermissionDenied
from engine.rules.guard import ContentRefused
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from storage import repositories as repo
from storage.models import NarratorCadence, ParticipantStatus, SessionStatus

from support.stories import ALICE, BOB, CARA, CHANNEL, GUILD, MOD, started

THREAD = 101
OTHER_CHANNEL = 200


async def on_demand(config_service: GuildConfigService) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)


def status_of(view, user_id: int) -> ParticipantStatus:  # type: ignore[no-untyped-def]
    return next(p.status for p in view.participants if p.user_id == user_id)


# Members who leave the server -------------------------------------------------------------------
async def test_member_who_left_is_marked_away_and_their_turn_passes_at_once(
    service: StoryService, clock
) -> None:
    await started(service, ALICE, BOB, CARA)
    [outcome] = await service.lifecycle.depart(GUILD, ALICE.user_id)
    assert outcome.had_turn and outcome.departed.user_id == ALICE.user_id
    session = outcome.session
    assert status_of(session, ALICE.user_id) == ParticipantStatus.AWAY
    assert session.current_player is not None and session.current_player.user_id == BOB.user_id
    assert session.turn_deadline is not None and session.turn_deadline > clock()
    # Hosting passes to the earliest remaining player, as when a host leaves the story.
    assert session.host_id == BOB.user_id
    with pytest.raises(NotYourTurn):
        await service.turns.submit_turn(CHANNEL, ALICE, "Alice writes from afar.")


async def test_departure_of_someone_waiting_keeps_the_turn_where_it_is(
    service: StoryService,
) -> None:
    await started(service, ALICE, BOB, CARA)
    [outcome] = await service.lifecycle.depart(GUILD, CARA.user_id)
    assert not outcome.had_turn
    assert outcome.session.current_player is not None
    assert outcome.session.current_player.user_id == ALICE.user_id
    assert [p.user_id for p in outcome.session.rotation] == [ALICE.user_id, BOB.user_id]
    # Nothing more happens the second time (a removal event, then a failed lookup).
    assert await service.lifecycle.depart(GUILD, CARA.user_id) == []


async def test_a_member_back_on_the_server_rejoins_at_their_old_place(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    await started(service, ALICE, BOB, CARA)
    await service.lifecycle.depart(GUILD, BOB.user_id)
    view = await service.lifecycle.join(CHANNEL, BOB)
    assert [p.user_id for p in view.rotation] == [ALICE.user_id, BOB.user_id, CARA.user_id]


async def test_departure_touches_every_story_of_that_server_and_no_other(
    service: StoryService,
) -> None:
    await started(service, ALICE, BOB)
    await started(service, BOB, ALICE, channel=OTHER_CHANNEL)
    elsewhere = await service.lifecycle.start(
        guild_id=GUILD + 1, channel_id=300, actor=ALICE, title="Elsewhere", genre="fantasy"
    )
    outcomes = await service.lifecycle.depart(GUILD, ALICE.user_id)
    assert sorted((o.session.channel_id, o.had_turn) for o in outcomes) == [
        (CHANNEL, True),
        (OTHER_CHANNEL, False),
    ]
    untouched = await service.queries.get(elsewhere.id)
    assert status_of(untouched, ALICE.user_id) == ParticipantStatus.ACTIVE


async def test_the_last_player_leaving_the_server_pauses_the_story(service: StoryService) -> None:
    await started(service, ALICE)
    [outcome] = await service.lifecycle.depart(GUILD, ALICE.user_id)
    assert outcome.session.status == SessionStatus.PAUSED
    assert outcome.session.turn_deadline is None


# Deleted channels and threads --------------------------------------------------------------------
async def test_deleting_a_channel_ends_its_story_and_its_threads_stories(
    service: StoryService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    in_channel = await started(service, ALICE, BOB)
    in_thread = await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=THREAD,
        parent_channel_id=CHANNEL,
        actor=BOB,
        title="The Thread",
        genre="fantasy",
    )
    other = await started(service, CARA, channel=OTHER_CHANNEL)
    ended = await service.lifecycle.close_deleted_channel(CHANNEL)
    assert sorted(v.id for v in ended) == [in_channel.id, in_thread.id]
    for view in ended:
        assert view.status == SessionStatus.ENDED and view.ended_at is not None
        assert view.turn_deadline is None and view.current_player is None
    assert (await service.queries.get(other.id)).status == SessionStatus.ACTIVE
    # Ended stories stay readable for export; the audit log says why they ended.
    transcript = await service.queries.transcript(in_channel.id)
    assert transcript.session.title == "The Lantern"
    async with session_factory() as db:
        events = await repo.recent_moderation_events(db=db, guild_id=GUILD, limit=10)
    assert sorted((e.rule, e.action, e.session_id) for e in events) == sorted(
        [
            ("channel_deleted", "ended", in_channel.id),
            ("channel_deleted", "ended", in_thread.id),
        ]
    )
    assert await service.lifecycle.close_deleted_channel(CHANNEL) == []


async def test_deleting_a_thread_ends_only_its_story(service: StoryService) -> None:
    in_channel = await started(service, ALICE, BOB)
    in_thread = await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=THREAD,
        parent_channel_id=CHANNEL,
        actor=BOB,
        title="The Thread",
        genre="fantasy",
    )
    [ended] = await service.lifecycle.close_deleted_channel(THREAD)
    assert ended.id == in_thread.id
    assert (await service.queries.get(in_channel.id)).status == SessionStatus.ACTIVE


# The bot removed from a server -------------------------------------------------------------------
async def test_removal_from_a_server_pauses_its_stories_with_a_notice_for_each_host(
    service: StoryService,
) -> None:
    active = await started(service, ALICE, BOB)
    lobby = await started(service, BOB, begin=False, channel=OTHER_CHANNEL)
    elsewhere = await service.lifecycle.start(
        guild_id=GUILD + 1, channel_id=300, actor=ALICE, title="Elsewhere", genre="fantasy"
    )
    await service.lifecycle.begin(300, ALICE)
    reason = "I was removed from the server."
    paused = await service.lifecycle.suspend_guild(GUILD, reason)
    assert sorted(v.id for v in paused) == [active.id, lobby.id]
    assert (await service.queries.get(active.id)).status == SessionStatus.PAUSED
    assert (await service.queries.get(lobby.id)).status == SessionStatus.LOBBY
    assert (await service.queries.get(elsewhere.id)).status == SessionStatus.ACTIVE
    assert await service.lifecycle.take_host_notice(CHANNEL, ALICE) == reason
    assert await service.lifecycle.take_host_notice(OTHER_CHANNEL, BOB) == reason


# Messages read twice ------------------------------------------------------------------------------
async def test_a_message_read_twice_is_one_turn(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    view = await started(service, ALICE)
    await service.turns.submit_turn(CHANNEL, ALICE, "Alice lights the lamp.", message_id=5000)
    # Alone in the rotation, it is Alice's turn again: only the message id tells.
    with pytest.raises(AlreadyRecorded):
        await service.turns.submit_turn(CHANNEL, ALICE, "Alice lights the lamp.", message_id=5000)
    await service.turns.submit_turn(CHANNEL, ALICE, "Alice climbs the stair.", message_id=5001)
    assert [t.discord_message_id for t in await service.queries.turns(view.id)] == [5000, 5001]


async def test_table_talk_read_twice_is_kept_once(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    first = await service.turns.record_table_talk(CHANNEL, BOB, "brb", message_id=6000)
    again = await service.turns.record_table_talk(CHANNEL, BOB, "brb", message_id=6000)
    assert first is not None and again is None
    transcript = await service.queries.transcript(view.id)
    assert [t.text for t in transcript.table_talk] == ["brb"]


async def test_catch_up_points_start_after_each_active_storys_newest_stored_message(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    playing = await started(service, ALICE, BOB)
    waiting = await started(service, CARA, begin=False, channel=OTHER_CHANNEL)
    assert waiting.status == SessionStatus.LOBBY
    [fresh] = await service.queries.catch_up_points()
    assert (fresh.session_id, fresh.guild_id, fresh.channel_id) == (playing.id, GUILD, CHANNEL)
    assert fresh.after_message_id is None
    assert fresh.changed_at is not None

    await service.turns.submit_turn(CHANNEL, ALICE, "Alice lights the lamp.", message_id=7000)
    await service.turns.record_table_talk(CHANNEL, ALICE, "nice", message_id=7002)
    await service.turns.submit_turn(CHANNEL, BOB, "Bob climbs the stair.", message_id=7001)
    [point] = await service.queries.catch_up_points()
    assert point.after_message_id == 7002
    assert point.changed_at >= fresh.changed_at

    await service.lifecycle.pause(CHANNEL, ALICE)
    assert await service.queries.catch_up_points() == []


# Titles checked before a thread is opened ---------------------------------------------------------
async def test_a_refused_title_is_refused_before_any_thread_is_opened(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, blocked_words=["moonstone"])
    with pytest.raises(ContentRefused):
        await service.lifecycle.check_start(
            guild_id=GUILD,
            channel_id=CHANNEL,
            actor=ALICE,
            title="The Moonstone",
            genre="fantasy",
            premise="A lighthouse keeper finds a door in the sea.",
        )
    await config_service.update(GUILD, MOD, starter_role_id=555)
    with pytest.raises(PermissionDenied, match="story-starter role"):
        await service.lifecycle.check_start(
            guild_id=GUILD, channel_id=CHANNEL, actor=ALICE, title="The Lantern", genre="fantasy"
        )
    # Checking stores nothing, and a running story in the parent channel is no obstacle.
    await started(service, MOD, begin=False)
    await service.lifecycle.check_start(
        guild_id=GUILD, channel_id=CHANNEL, actor=MOD, title="The Lantern", genre="fantasy"
    )
    assert len(await service.queries.list_sessions(GUILD)) == 1
