"""Server content rules applied by the session service, and the audit trail they leave."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.actors import Actor
from engine.errors import InvalidSetting, PermissionDenied
from engine.rules.guard import ContentGuard, ContentRefused, RateLimited
from engine.rules.guild_config import GuildConfigService
from engine.rules.moderation import ModerationService
from engine.rules.throttles import RateLimits, Throttles
from engine.story import StoryService
from storage.models import ContentRating, NarratorCadence

from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started


@pytest.fixture
def moderation(session_factory: async_sessionmaker[AsyncSession]) -> ModerationService:
    return ModerationService(session_factory, ContentGuard(session_factory))


async def on_demand_with_words(config_service: GuildConfigService, *words: str) -> None:
    await config_service.update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, blocked_words=list(words)
    )


async def test_refused_turn_stores_nothing_and_keeps_the_rotation(
    service: StoryService, config_service: GuildConfigService, moderation: ModerationService
) -> None:
    await on_demand_with_words(config_service, "moonstone")
    view = await started(service, ALICE, BOB)
    before = await service.queries.get(view.id)
    with pytest.raises(ContentRefused) as refused:
        await service.turns.submit_turn(CHANNEL, ALICE, "I steal the M.O.O.N.S.T.O.N.E and run.")
    assert refused.value.verdict.rule == "blocked_word"
    assert "moonstone" not in str(refused.value).casefold(), "the reason does not echo the word"
    after = await service.queries.get(view.id)
    assert await service.queries.turns(view.id) == []
    assert after.current_player == before.current_player
    assert after.turn_count == before.turn_count and after.turn_deadline == before.turn_deadline
    [entry] = await moderation.audit(GUILD, MOD)
    assert (entry.rule, entry.action, entry.user_id, entry.channel_id, entry.session_id) == (
        "blocked_word",
        "refused",
        ALICE.user_id,
        CHANNEL,
        view.id,
    )


@pytest.mark.parametrize(
    ("changes", "text", "rule"),
    [
        pytest.param({}, "\U0001f409" * 7, "emoji_flood", id="seven-dragons-by-default"),
        pytest.param({}, "x" * 70, "repeated_characters", id="seventy-x-by-default"),
        pytest.param(
            {"max_emoji": 1},
            "The dragon \U0001f409 roars \U0001f525",
            "emoji_flood",
            id="server-emoji-limit",
        ),
        pytest.param(
            {"max_repeated_words": 2}, "Run, run, run!", "repeated_words", id="server-word-limit"
        ),
        pytest.param(
            {"max_repeated_characters": 3},
            "Noooo!",
            "repeated_characters",
            id="server-character-limit",
        ),
        pytest.param(
            {"max_combining_marks": 1},
            "Bu\u0300\u0301n",
            "combining_marks",
            id="server-marks-limit",
        ),
    ],
)
async def test_floods_are_refused_at_the_server_limits(
    service: StoryService,
    config_service: GuildConfigService,
    changes: dict[str, int],
    text: str,
    rule: str,
) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, **changes)
    view = await started(service, ALICE, BOB)
    with pytest.raises(ContentRefused) as refused:
        await service.turns.submit_turn(CHANNEL, ALICE, text)
    assert refused.value.verdict.rule == rule
    assert await service.queries.turns(view.id) == []


async def test_raised_flood_limit_lets_the_same_turn_through(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, max_emoji=10
    )
    view = await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "\U0001f409" * 7)
    assert [turn.text for turn in await service.queries.turns(view.id)] == ["\U0001f409" * 7]


async def test_clean_turn_after_a_refusal_is_accepted(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand_with_words(config_service, "moonstone")
    view = await started(service, ALICE, BOB)
    with pytest.raises(ContentRefused):
        await service.turns.submit_turn(CHANNEL, ALICE, "moonstone")
    await service.turns.submit_turn(CHANNEL, ALICE, "I pocket the pale stone and run.")
    assert len(await service.queries.turns(view.id)) == 1


async def test_edit_into_a_blocked_word_is_refused(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand_with_words(config_service, "moonstone")
    view = await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "I pocket the stone.")
    with pytest.raises(ContentRefused):
        await service.turns.edit_turn(CHANNEL, ALICE, "I pocket the moonstone.")
    [turn] = await service.queries.turns(view.id)
    assert turn.text == "I pocket the stone." and turn.edited_at is None


async def test_titles_premises_lore_and_notes_are_checked(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await on_demand_with_words(config_service, "moonstone")
    for title, premise in (("The Moonstone", ""), ("Fine", "Find the moonstone.")):
        with pytest.raises(ContentRefused):
            await service.lifecycle.start(
                guild_id=GUILD,
                channel_id=CHANNEL,
                actor=ALICE,
                title=title,
                genre="fantasy",
                premise=premise,
            )
    assert await service.queries.in_channel(CHANNEL) is None
    view = await started(service, ALICE, BOB)
    with pytest.raises(ContentRefused):
        await service.lore.add_lore(CHANNEL, ALICE, "Gem", ["moonstone"], "A pale gem.")
    with pytest.raises(ContentRefused):
        await service.lifecycle.set_authors_note(CHANNEL, ALICE, "Mention the moonstone often.")
    with pytest.raises(ContentRefused):
        await service.turns.record_table_talk(CHANNEL, BOB, "lol moonstone")
    transcript = await service.queries.transcript(view.id)
    assert transcript.lore == () and transcript.table_talk == ()
    assert transcript.session.authors_note == ""


async def test_builtin_list_follows_the_rating_and_mature_needs_an_age_restricted_channel(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await config_service.update(
        GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND, content_rating=ContentRating.MATURE
    )
    await started(service, ALICE, BOB)
    # Not age-restricted: mature falls back to teen, where strong sexual terms stay blocked.
    with pytest.raises(ContentRefused):
        await service.turns.submit_turn(CHANNEL, ALICE, "They find a dildo in the hayloft.")
    await service.lifecycle.end(CHANNEL, ALICE)
    await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=CHANNEL,
        actor=ALICE,
        title="Night",
        genre="horror",
        age_restricted=True,
    )
    await service.lifecycle.join(CHANNEL, BOB)
    await service.lifecycle.begin(CHANNEL, ALICE)
    outcome = await service.turns.submit_turn(CHANNEL, ALICE, "They find a dildo in the hayloft.")
    assert outcome.turn.number == 1


async def test_channel_rating_override_applies_and_mature_is_refused_outside_nsfw(
    service: StoryService, config_service: GuildConfigService, moderation: ModerationService
) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)
    with pytest.raises(InvalidSetting, match="age-restricted"):
        await moderation.set_channel_rating(
            GUILD, CHANNEL, MOD, ContentRating.MATURE, age_restricted=False
        )
    await moderation.set_channel_rating(
        GUILD, CHANNEL, MOD, ContentRating.TEEN, age_restricted=False
    )
    assert await moderation.channel_rating(CHANNEL) == ContentRating.TEEN
    await started(service, ALICE, BOB)
    # "damn" is refused at `everyone` (the server's rating) but fine at teen (this channel's).
    outcome = await service.turns.submit_turn(CHANNEL, ALICE, "Damn, the door is locked.")
    assert outcome.turn.number == 1


async def test_blocked_words_are_managed_by_moderators_only(moderation: ModerationService) -> None:
    assert await moderation.add_blocked_words(GUILD, MOD, ["Moonstone", " pale gem "]) == (
        "Moonstone",
        "pale gem",
    )
    assert await moderation.add_blocked_words(GUILD, MOD, ["moonstone"]) == (
        "Moonstone",
        "pale gem",
    )
    assert await moderation.remove_blocked_words(GUILD, MOD, ["MOONSTONE"]) == ("pale gem",)
    with pytest.raises(InvalidSetting, match="Not on the blocked list"):
        await moderation.remove_blocked_words(GUILD, MOD, ["ruby"])
    with pytest.raises(InvalidSetting):
        await moderation.add_blocked_words(GUILD, MOD, ["bad\x00word"])
    for action in (
        moderation.blocked_words(GUILD, ALICE),
        moderation.add_blocked_words(GUILD, ALICE, ["x"]),
        moderation.audit(GUILD, ALICE),
    ):
        with pytest.raises(PermissionDenied):
            await action


async def test_moderator_role_grants_the_safety_tools(
    config_service: GuildConfigService, moderation: ModerationService
) -> None:
    await config_service.update(GUILD, MOD, moderator_role_id=555)
    helper = Actor(7, "Helper", role_ids=(555,))
    assert await moderation.add_blocked_words(GUILD, helper, ["moonstone"]) == ("moonstone",)


async def test_audit_log_is_per_server(
    service: StoryService, config_service: GuildConfigService, moderation: ModerationService
) -> None:
    await on_demand_with_words(config_service, "moonstone")
    await started(service, ALICE, BOB)
    with pytest.raises(ContentRefused):
        await service.turns.submit_turn(CHANNEL, ALICE, "moonstone")
    other_mod = Actor(98, "Other", is_moderator=True)
    assert await moderation.audit(GUILD + 1, other_mod) == []


async def test_turns_faster_than_the_limit_are_refused_and_audited(
    session_factory: async_sessionmaker[AsyncSession],
    config_service: GuildConfigService,
    moderation: ModerationService,
    clock,  # type: ignore[no-untyped-def]
) -> None:
    now = [0.0]
    throttles = Throttles(RateLimits(turns_per_minute=2), clock=lambda: now[0])
    service = StoryService.create(session_factory, clock=clock, throttles=throttles)
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE)
    await service.turns.submit_turn(CHANNEL, ALICE, "One.")
    await service.turns.submit_turn(CHANNEL, ALICE, "Two.")
    with pytest.raises(RateLimited, match=r"too quickly\. Try again in \d+ s"):
        await service.turns.submit_turn(CHANNEL, ALICE, "Three.")
    now[0] += 61
    await service.turns.submit_turn(CHANNEL, ALICE, "Three.")
    assert [t.text for t in await service.queries.turns(view.id)] == ["One.", "Two.", "Three."]
    [entry] = await moderation.audit(GUILD, MOD)
    assert (entry.rule, entry.action) == ("rate:turns", "rate_limited")
