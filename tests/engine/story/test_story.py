from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.actors import Actor
from engine.errors import (
    InvalidState,
    NotYourTurn,
    PermissionDenied,
    SessionNotFound,
    StoryError,
    TurnRejected,
)
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.lore import MAX_LORE_KEYWORD_CHARS, MAX_LORE_KEYWORDS, MAX_LORE_KEYWORDS_TEXT
from storage import repositories as repo
from storage.models import NarratorCadence, ParticipantStatus, SessionStatus, TurnKind

from support.stories import ALICE, BOB, CARA, CHANNEL, DAN, GUILD, MOD, started


async def on_demand(config_service: GuildConfigService, **extra: object) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, **extra)


# Life cycle -----------------------------------------------------------------------------------
async def test_start_makes_host_the_first_player(service: StoryService) -> None:
    view = await started(service, ALICE, begin=False)
    assert view.status == SessionStatus.LOBBY
    assert view.host_id == ALICE.user_id
    assert [p.display_name for p in view.rotation] == ["Alice"]


async def test_second_start_in_same_channel_is_refused(service: StoryService) -> None:
    await started(service, ALICE, begin=False)
    with pytest.raises(InvalidState, match="already running"):
        await started(service, BOB, begin=False)


async def test_ended_story_frees_the_channel(service: StoryService) -> None:
    await started(service, ALICE)
    await service.lifecycle.end(CHANNEL, ALICE)
    view = await started(service, BOB, begin=False)
    assert view.host_id == BOB.user_id


async def test_begin_gives_first_joiner_the_turn_with_a_deadline(
    service: StoryService, clock
) -> None:
    view = await started(service, ALICE, BOB, CARA)
    assert view.status == SessionStatus.ACTIVE
    assert view.current_player is not None and view.current_player.user_id == ALICE.user_id
    assert view.turn_deadline is not None and view.turn_deadline > clock()


async def test_only_host_or_moderator_may_begin(service: StoryService) -> None:
    await started(service, ALICE, BOB, begin=False)
    with pytest.raises(PermissionDenied, match="host or a moderator"):
        await service.lifecycle.begin(CHANNEL, BOB)
    view = await service.lifecycle.begin(CHANNEL, MOD)
    assert view.status == SessionStatus.ACTIVE


async def test_unknown_channel_gives_clear_error(service: StoryService) -> None:
    with pytest.raises(SessionNotFound, match="no story in this channel"):
        await service.lifecycle.join(12345, ALICE)


@pytest.mark.parametrize(
    ("title", "premise", "message"),
    [
        ("", "x", "needs a title"),
        ("   ", "x", "needs a title"),
        ("t" * 201, "x", "title is too long"),
        ("ok", "p" * 2001, "premise is too long"),
    ],
)
async def test_bad_start_input_is_refused_and_stores_nothing(
    service: StoryService, title: str, premise: str, message: str
) -> None:
    with pytest.raises(TurnRejected, match=message):
        await service.lifecycle.start(
            guild_id=GUILD,
            channel_id=CHANNEL,
            actor=ALICE,
            title=title,
            genre="fantasy",
            premise=premise,
        )
    assert await service.queries.in_channel(CHANNEL) is None


async def test_starter_role_restricts_who_may_start(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, starter_role_id=555)
    with pytest.raises(PermissionDenied, match="story-starter role"):
        await started(service, ALICE, begin=False)
    allowed = Actor(7, "Gwen", role_ids=frozenset({555}))
    view = await started(service, allowed, begin=False)
    assert view.host_id == allowed.user_id


# Turns ----------------------------------------------------------------------------------------
async def test_rotation_follows_join_order_and_wraps(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    await started(service, ALICE, BOB, CARA)
    order = []
    for actor in [ALICE, BOB, CARA, ALICE]:
        outcome = await service.turns.submit_turn(CHANNEL, actor, f"{actor.display_name} acts.")
        assert outcome.session.current_player is not None
        order.append(outcome.session.current_player.display_name)
    assert order == ["Bob", "Cara", "Alice", "Bob"]


async def test_out_of_turn_message_is_not_recorded(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(NotYourTurn, match="Alice's turn"):
        await service.turns.submit_turn(CHANNEL, BOB, "I jump in early.")
    assert await service.queries.turns((await service.queries.in_channel(CHANNEL)).id) == []  # type: ignore[union-attr]


async def test_outsider_cannot_write(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(NotYourTurn):
        await service.turns.submit_turn(CHANNEL, DAN, "Hello!")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n\t ", "empty"),
        ("x" * 1501, "too long"),
    ],
)
async def test_bad_turn_is_refused_and_rotation_stays(
    service: StoryService, text: str, message: str
) -> None:
    view = await started(service, ALICE, BOB)
    with pytest.raises(TurnRejected, match=message):
        await service.turns.submit_turn(CHANNEL, ALICE, text)
    after = await service.queries.get(view.id)
    assert after.turn_count == 0
    assert after.current_player == view.current_player
    assert await service.queries.turns(view.id) == []


async def test_minimum_length_comes_from_guild_settings(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, min_turn_chars=10)
    await started(service, ALICE, BOB)
    with pytest.raises(TurnRejected, match=r"too short \(3 characters; at least 10"):
        await service.turns.submit_turn(CHANNEL, ALICE, "Hm.")


async def test_turn_is_stored_trimmed_with_number_and_author(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    outcome = await service.turns.submit_turn(
        CHANNEL, ALICE, "  I light the lamp.  ", message_id=42
    )
    assert outcome.turn.number == 1
    assert outcome.turn.text == "I light the lamp."
    assert outcome.turn.author_name == "Alice"
    assert outcome.turn.discord_message_id == 42
    assert [t.text for t in await service.queries.turns(view.id)] == ["I light the lamp."]


# Narrator cadence -----------------------------------------------------------------------------
async def test_every_turn_cadence_asks_narrator_and_blocks_next_player_until_it_speaks(
    service: StoryService,
) -> None:
    view = await started(service, ALICE, BOB)
    outcome = await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")
    assert outcome.narration is not None
    assert outcome.session.narrator_pending
    assert outcome.session.turn_deadline is None
    with pytest.raises(NotYourTurn, match="narrator is still writing"):
        await service.turns.submit_turn(CHANNEL, BOB, "I wait.")
    stored = await service.ledger.record_narration(
        view.id, outcome.narration.job_id, "The sea stirs."
    )
    assert stored is not None and stored.turn.kind == TurnKind.NARRATOR
    assert stored.turn.number == 2
    assert not stored.session.narrator_pending
    assert stored.session.turn_deadline is not None
    await service.turns.submit_turn(CHANNEL, BOB, "I wait.")


async def test_every_round_cadence_speaks_after_the_last_player(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.EVERY_ROUND)
    await started(service, ALICE, BOB, CARA)
    first = await service.turns.submit_turn(CHANNEL, ALICE, "One.")
    second = await service.turns.submit_turn(CHANNEL, BOB, "Two.")
    third = await service.turns.submit_turn(CHANNEL, CARA, "Three.")
    assert (first.narration, second.narration) == (None, None)
    assert third.narration is not None


async def test_on_demand_narrator_speaks_only_when_asked(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    view = await started(service, ALICE, BOB)
    assert (await service.turns.submit_turn(CHANNEL, ALICE, "One.")).narration is None
    request = await service.ledger.request_narration(CHANNEL, BOB)
    with pytest.raises(InvalidState, match="already writing"):
        await service.ledger.request_narration(CHANNEL, ALICE)
    stored = await service.ledger.record_narration(view.id, request.job_id, "Then thunder.")
    assert stored is not None and stored.turn.number == 2


async def test_duplicate_narration_result_stores_one_turn(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")).narration
    assert job is not None
    first = await service.ledger.record_narration(view.id, job.job_id, "The sea stirs.")
    again = await service.ledger.record_narration(view.id, job.job_id, "The sea stirs.")
    assert first is not None and again is not None
    assert again.duplicate and again.turn.number == first.turn.number
    assert len(await service.queries.turns(view.id)) == 2


async def test_stale_narration_result_is_ignored(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")
    assert await service.ledger.record_narration(view.id, "not-the-pending-job", "Nope.") is None
    assert len(await service.queries.turns(view.id)) == 1


async def test_failed_narration_hands_turn_back_to_players(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")).narration
    assert job is not None
    after = await service.ledger.narration_failed(view.id, job.job_id)
    assert after is not None and not after.narrator_pending and after.turn_deadline is not None
    await service.turns.submit_turn(CHANNEL, BOB, "I carry on.")


async def test_retry_keeps_earlier_versions_as_alternatives(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")).narration
    assert job is not None
    await service.ledger.record_narration(view.id, job.job_id, "Version one.")
    retry = await service.ledger.retry_narration(CHANNEL, BOB)
    assert retry.retry_of_turn == 2
    stored = await service.ledger.record_narration(view.id, retry.job_id, "Version two.")
    assert stored is not None
    assert stored.turn.number == 2 and stored.turn.text == "Version two."
    assert stored.turn.alternatives == ("Version one.",)
    chosen = await service.ledger.choose_alternative(
        view.id, ALICE, 2, 0, guild_id=GUILD, channel_id=CHANNEL
    )
    assert chosen.text == "Version one." and chosen.alternatives == ("Version two.",)


async def retried_story(service: StoryService) -> int:
    """Play a story to a narrator passage with one earlier version; return its id."""
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")).narration
    assert job is not None
    await service.ledger.record_narration(view.id, job.job_id, "Version one.")
    retry = await service.ledger.retry_narration(CHANNEL, BOB)
    await service.ledger.record_narration(view.id, retry.job_id, "Version two.")
    return view.id


@pytest.mark.parametrize(
    ("guild_id", "channel_id"),
    [(GUILD, CHANNEL + 1), (GUILD + 1, CHANNEL), (GUILD + 1, CHANNEL + 1)],
)
async def test_a_version_is_chosen_only_from_the_storys_own_channel_and_server(
    service: StoryService, guild_id: int, channel_id: int
) -> None:
    session_id = await retried_story(service)
    with pytest.raises(InvalidState, match="not played in this channel"):
        await service.ledger.choose_alternative(
            session_id, ALICE, 2, 0, guild_id=guild_id, channel_id=channel_id
        )
    [_, narrator] = await service.queries.turns(session_id)
    assert (narrator.text, narrator.alternatives) == ("Version two.", ("Version one.",))


async def test_an_ended_storys_versions_cannot_be_chosen(service: StoryService) -> None:
    session_id = await retried_story(service)
    await service.lifecycle.end(CHANNEL, ALICE)
    with pytest.raises(InvalidState, match="has ended"):
        await service.ledger.choose_alternative(
            session_id, MOD, 2, 0, guild_id=GUILD, channel_id=CHANNEL
        )
    [_, narrator] = await service.queries.turns(session_id)
    assert narrator.text == "Version two."


async def test_retry_needs_a_narrator_turn_last(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(InvalidState, match="narrator's latest passage"):
        await service.ledger.retry_narration(CHANNEL, ALICE)


# Undo and edit --------------------------------------------------------------------------------
async def test_undo_restores_turn_and_rotation_together(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    before = await started(service, ALICE, BOB, CARA)
    await service.turns.submit_turn(CHANNEL, ALICE, "One.")
    undone = await service.turns.undo(CHANNEL, ALICE)
    assert undone.removed.text == "One."
    assert undone.session.turn_count == 0
    assert undone.session.current_player == before.current_player
    await service.turns.submit_turn(CHANNEL, ALICE, "One again.")
    assert [t.number for t in await service.queries.turns(before.id)] == [1]


async def test_undo_of_someone_elses_turn_is_refused(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    await started(service, ALICE, BOB, CARA)
    await service.turns.submit_turn(CHANNEL, ALICE, "One.")
    with pytest.raises(PermissionDenied):
        await service.turns.undo(CHANNEL, CARA)
    assert (await service.turns.undo(CHANNEL, MOD)).removed.text == "One."


async def test_undo_of_player_turn_cancels_pending_narration(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "One.")).narration
    assert job is not None
    undone = await service.turns.undo(CHANNEL, ALICE)
    assert not undone.session.narrator_pending
    assert await service.ledger.record_narration(view.id, job.job_id, "Late.") is None


async def test_player_may_undo_narrator_reply_to_their_turn(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "One.")).narration
    assert job is not None
    await service.ledger.record_narration(view.id, job.job_id, "Reply.")
    with pytest.raises(PermissionDenied):
        await service.turns.undo(CHANNEL, BOB)
    undone = await service.turns.undo(CHANNEL, ALICE)
    assert undone.removed.kind == TurnKind.NARRATOR
    assert not undone.session.narrator_pending
    assert undone.session.current_player is not None
    assert undone.session.current_player.user_id == BOB.user_id


async def test_edit_own_last_turn_until_next_turn_is_written(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "One.", message_id=7)
    edited = await service.turns.edit_turn(CHANNEL, ALICE, "One, better.", message_id=7)
    assert edited.text == "One, better." and edited.edited_at is not None
    with pytest.raises(InvalidState, match="latest turn"):
        await service.turns.edit_turn(CHANNEL, BOB, "Not mine.")
    await service.turns.submit_turn(CHANNEL, BOB, "Two.")
    with pytest.raises(InvalidState, match="latest turn"):
        await service.turns.edit_turn(CHANNEL, ALICE, "Too late.", message_id=7)


# Skips and timeouts ---------------------------------------------------------------------------
async def test_host_skips_at_once(service: StoryService) -> None:
    await started(service, ALICE, BOB, CARA)
    await service.turns.skip(CHANNEL, ALICE)  # host skips herself
    view = await service.queries.in_channel(CHANNEL)
    assert view is not None and view.current_player is not None
    assert view.current_player.user_id == BOB.user_id


async def test_majority_vote_skips_current_player(service: StoryService) -> None:
    await started(service, ALICE, BOB, CARA)
    first = await service.turns.skip(CHANNEL, BOB)
    assert first.skipped is None and (first.votes, first.votes_needed) == (1, 2)
    with pytest.raises(InvalidState, match="already voted"):
        await service.turns.skip(CHANNEL, BOB)
    second = await service.turns.skip(CHANNEL, CARA)
    assert second.skipped is not None and second.skipped.user_id == ALICE.user_id
    assert second.session.current_player is not None
    assert second.session.current_player.user_id == BOB.user_id


async def test_outsider_cannot_vote_to_skip(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(PermissionDenied):
        await service.turns.skip(CHANNEL, DAN)


async def test_timeout_skips_player_and_marks_away_after_repeats(
    service: StoryService, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(
        GUILD,
        MOD,
        narrator_cadence=NarratorCadence.ON_DEMAND,
        turn_timeout_seconds=60,
        max_consecutive_timeouts=2,
    )
    await started(service, ALICE, BOB)
    clock.advance(30)
    assert await service.deadlines.expire_overdue() == []
    clock.advance(31)
    [first] = await service.deadlines.expire_overdue()
    assert first.skipped.user_id == ALICE.user_id and not first.marked_away
    await service.turns.submit_turn(CHANNEL, BOB, "Bob writes.")
    clock.advance(61)
    [second] = await service.deadlines.expire_overdue()
    assert second.skipped.user_id == ALICE.user_id and second.marked_away
    view = second.session
    assert [p.display_name for p in view.rotation] == ["Bob"]
    # Bob alone keeps the turn; Alice comes back by joining and keeps her place.
    back = await service.lifecycle.join(CHANNEL, ALICE)
    alice = next(p for p in back.participants if p.user_id == ALICE.user_id)
    assert alice.status == ParticipantStatus.ACTIVE and alice.join_order == 1


async def test_writing_resets_consecutive_timeouts(
    service: StoryService, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(
        GUILD,
        MOD,
        narrator_cadence=NarratorCadence.ON_DEMAND,
        turn_timeout_seconds=60,
    )
    await started(service, ALICE, BOB)
    clock.advance(61)
    await service.deadlines.expire_overdue()
    await service.turns.submit_turn(CHANNEL, BOB, "Bob.")
    view = (await service.turns.submit_turn(CHANNEL, ALICE, "Alice.")).session
    alice = next(p for p in view.participants if p.user_id == ALICE.user_id)
    assert alice.consecutive_timeouts == 0


async def test_deadlines_are_stored_so_a_new_service_resumes_them(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(GUILD, MOD, turn_timeout_seconds=60)
    await started(StoryService.create(session_factory, clock=clock), ALICE, BOB)
    restarted = StoryService.create(session_factory, clock=clock)  # as after a bot restart
    deadline = await restarted.deadlines.next_deadline()
    assert deadline is not None and deadline == clock() + timedelta(seconds=60)
    clock.advance(120)
    [outcome] = await restarted.deadlines.expire_overdue()
    assert outcome.skipped.user_id == ALICE.user_id


# Joining and leaving --------------------------------------------------------------------------
async def test_late_joiner_enters_at_end_of_rotation(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand(config_service)
    await started(service, ALICE, BOB)
    view = await service.lifecycle.join(CHANNEL, CARA)
    assert [p.display_name for p in view.rotation] == ["Alice", "Bob", "Cara"]


async def test_leaving_current_player_passes_the_turn(service: StoryService) -> None:
    await started(service, ALICE, BOB, CARA)
    view = await service.lifecycle.leave(CHANNEL, ALICE)
    assert view.current_player is not None and view.current_player.user_id == BOB.user_id
    assert view.host_id == BOB.user_id  # hosting passes to the earliest remaining player


async def test_rejoining_after_leaving_goes_to_the_end(service: StoryService) -> None:
    await started(service, ALICE, BOB, CARA)
    await service.lifecycle.leave(CHANNEL, BOB)
    view = await service.lifecycle.join(CHANNEL, BOB)
    assert [p.display_name for p in view.rotation] == ["Alice", "Cara", "Bob"]


async def test_last_player_leaving_pauses_and_a_joiner_revives(service: StoryService) -> None:
    await started(service, ALICE)
    paused = await service.lifecycle.leave(CHANNEL, ALICE)
    assert paused.status == SessionStatus.PAUSED
    revived = await service.lifecycle.join(CHANNEL, BOB)
    assert revived.status == SessionStatus.ACTIVE
    assert revived.current_player is not None and revived.current_player.user_id == BOB.user_id


async def test_joining_twice_is_refused(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(InvalidState, match="already in this story"):
        await service.lifecycle.join(CHANNEL, BOB)


# Pause, resume, end ---------------------------------------------------------------------------
async def test_paused_story_refuses_turns_and_stops_the_clock(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    paused = await service.lifecycle.pause(CHANNEL, ALICE)
    assert paused.turn_deadline is None
    with pytest.raises(InvalidState, match="paused"):
        await service.turns.submit_turn(CHANNEL, ALICE, "Hello.")
    resumed = await service.lifecycle.resume(CHANNEL, ALICE)
    assert resumed.turn_deadline is not None
    await service.turns.submit_turn(CHANNEL, ALICE, "Hello.")


async def test_suspending_pauses_once_audits_and_leaves_the_host_a_notice(
    service: StoryService, session_factory: async_sessionmaker[AsyncSession]
) -> None:
    view = await started(service, ALICE, BOB)
    paused = await service.lifecycle.suspend(view.id, "I may not post here.")
    assert paused is not None and paused.status == SessionStatus.PAUSED
    assert paused.turn_deadline is None
    # Another failed post for the same reason changes nothing and is not audited again.
    assert await service.lifecycle.suspend(view.id, "I may not post here.") is None
    async with session_factory() as db:
        events = await repo.recent_moderation_events(db=db, guild_id=GUILD, limit=10)
    assert [(e.rule, e.action, e.detail, e.session_id) for e in events] == [
        ("cannot_post", "paused", "I may not post here.", view.id)
    ]
    # Only the host is told, once.
    assert await service.lifecycle.take_host_notice(CHANNEL, BOB) is None
    assert await service.lifecycle.take_host_notice(CHANNEL, ALICE) == "I may not post here."
    assert await service.lifecycle.take_host_notice(CHANNEL, ALICE) is None
    with pytest.raises(InvalidState, match="paused"):
        await service.turns.submit_turn(CHANNEL, ALICE, "Hello.")


async def test_resuming_clears_the_hosts_notice(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    await service.lifecycle.suspend(view.id, "I may not post here.")
    resumed = await service.lifecycle.resume(CHANNEL, ALICE)
    assert resumed.status == SessionStatus.ACTIVE and resumed.turn_deadline is not None
    assert await service.lifecycle.take_host_notice(CHANNEL, ALICE) is None


async def test_an_ended_story_is_not_suspended(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    await service.lifecycle.end(CHANNEL, ALICE)
    assert await service.lifecycle.suspend(view.id, "I may not post here.") is None


async def test_player_cannot_end_someone_elses_story(service: StoryService) -> None:
    await started(service, ALICE, BOB)
    with pytest.raises(PermissionDenied):
        await service.lifecycle.end(CHANNEL, BOB)
    ended = await service.lifecycle.end(CHANNEL, MOD)
    assert ended.status == SessionStatus.ENDED and ended.ended_at is not None


async def test_moderator_role_from_settings_grants_powers(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(GUILD, MOD, moderator_role_id=777)
    await started(service, ALICE, BOB)
    keeper = Actor(8, "Keeper", role_ids=frozenset({777}))
    assert (await service.lifecycle.pause(CHANNEL, keeper)).status == SessionStatus.PAUSED


# Lore, recap, transcript ----------------------------------------------------------------------
async def test_lore_add_list_remove(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    await service.lore.add_lore(
        CHANNEL, ALICE, "The Door", ["door", "sea door"], "It opens at dusk."
    )
    [entry] = await service.lore.list_lore(view.id)
    assert entry.keywords == ("door", "sea door")
    with pytest.raises(PermissionDenied):
        await service.lore.remove_lore(CHANNEL, BOB, "the door")
    await service.lore.remove_lore(CHANNEL, ALICE, "the door")
    assert await service.lore.list_lore(view.id) == []


async def test_lore_keywords_are_bounded_so_a_command_can_declare_their_length(
    service: StoryService,
) -> None:
    view = await started(service, ALICE, BOB)
    phrase = "the keeper of the lamp on the northern shore road, "
    longest = [f"{i} {phrase}"[:MAX_LORE_KEYWORD_CHARS].strip() for i in range(MAX_LORE_KEYWORDS)]
    assert len(", ".join(longest)) <= MAX_LORE_KEYWORDS_TEXT
    await service.lore.add_lore(CHANNEL, ALICE, "Longest", longest, "Every keyword fits.")
    with pytest.raises(TurnRejected, match=f"at most {MAX_LORE_KEYWORD_CHARS} characters"):
        await service.lore.add_lore(
            CHANNEL, ALICE, "Door", [f"door {phrase}" * 2], "Too long a key."
        )
    assert [e.name for e in await service.lore.list_lore(view.id)] == ["Longest"]


async def test_recap_and_transcript_show_the_whole_story(service: StoryService) -> None:
    view = await started(service, ALICE, BOB)
    job = (await service.turns.submit_turn(CHANNEL, ALICE, "One.")).narration
    assert job is not None
    await service.ledger.record_narration(view.id, job.job_id, "Reply.")
    await service.ledger.record_summary(view.id, "sum-1", "Alice lit the lamp.", 2)
    recap = await service.queries.recap(CHANNEL)
    assert [t.text for t in recap.recent_turns] == ["One.", "Reply."]
    assert recap.summary is not None and recap.summary.covers_through_turn == 2
    transcript = await service.queries.transcript(view.id)
    assert [t.author_name for t in transcript.turns] == ["Alice", "Narrator"]
    assert transcript.summaries[0].text == "Alice lit the lamp."


async def test_unknown_genre_is_refused_with_the_valid_choices(service: StoryService) -> None:
    with pytest.raises(StoryError, match=r"Unknown genre 'westerns'.*fantasy"):
        await service.lifecycle.start(
            guild_id=GUILD, channel_id=CHANNEL, actor=ALICE, title="T", genre="westerns"
        )
    assert await service.queries.in_channel(CHANNEL) is None


# Table talk -----------------------------------------------------------------------------------
async def test_players_table_talk_is_kept_in_the_transcript_but_not_as_a_turn(
    service: StoryService,
) -> None:
    view = await started(service, ALICE, BOB)
    await service.turns.record_table_talk(CHANNEL, BOB, "  brb, getting tea  ", message_id=55)
    transcript = await service.queries.transcript(view.id)
    assert transcript.turns == ()
    assert [(t.author_name, t.text, t.after_turn) for t in transcript.table_talk] == [
        ("Bob", "brb, getting tea", 0)
    ]


async def test_table_talk_of_onlookers_is_not_stored(service: StoryService) -> None:
    view = await started(service, ALICE)
    assert await service.turns.record_table_talk(CHANNEL, DAN, "who are you people") is None
    assert await service.turns.record_table_talk(CHANNEL, ALICE, "   ") is None
    assert (await service.queries.transcript(view.id)).table_talk == ()
