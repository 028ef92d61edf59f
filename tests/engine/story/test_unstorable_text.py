"""NUL bytes and broken surrogates are refused in every field, on both databases."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from engine.actors import Actor
from engine.errors import InvalidSetting, StoryError
from engine.rules.guard import ContentRefused
from engine.rules.guild_config import GuildConfigService
from engine.rules.moderation import ModerationService
from engine.story import StoryService
from engine.story.views import SessionView, StoryTranscript
from storage.models import NarratorCadence

from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started

BAD = {"nul": "\x00", "surrogate": "\ud800"}
Action = Callable[[StoryService, str], Awaitable[object]]


async def _turn(service: StoryService, bad: str) -> object:
    return await service.turns.submit_turn(CHANNEL, BOB, f"I open the door{bad}.")


async def _edit(service: StoryService, bad: str) -> object:
    return await service.turns.edit_turn(CHANNEL, ALICE, f"I light the lamp{bad}.")


async def _table_talk(service: StoryService, bad: str) -> object:
    return await service.turns.record_table_talk(CHANNEL, BOB, f"brb{bad}")


async def _title(service: StoryService, bad: str) -> object:
    return await service.lifecycle.start(
        guild_id=GUILD, channel_id=CHANNEL + 1, actor=BOB, title=f"Tide{bad}", genre="fantasy"
    )


async def _premise(service: StoryService, bad: str) -> object:
    return await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=CHANNEL + 1,
        actor=BOB,
        title="Tide",
        genre="fantasy",
        premise=f"The sea{bad} rises.",
    )


async def _authors_note(service: StoryService, bad: str) -> object:
    return await service.lifecycle.set_authors_note(CHANNEL, ALICE, f"Keep it{bad} eerie.")


async def _lore_name(service: StoryService, bad: str) -> object:
    return await service.lore.add_lore(CHANNEL, ALICE, f"Door{bad}", ["door"], "It opens.")


async def _lore_keyword(service: StoryService, bad: str) -> object:
    return await service.lore.add_lore(CHANNEL, ALICE, "Door", [f"do{bad}or"], "It opens.")


async def _lore_text(service: StoryService, bad: str) -> object:
    return await service.lore.add_lore(CHANNEL, ALICE, "Door", ["door"], f"It opens{bad}.")


async def _lore_removal(service: StoryService, bad: str) -> object:
    return await service.lore.remove_lore(CHANNEL, ALICE, f"Lamp{bad}")


FIELDS: dict[str, tuple[Action, str]] = {
    "turn": (_turn, "Your turn"),
    "edit": (_edit, "Your turn"),
    "table-talk": (_table_talk, "Your message"),
    "title": (_title, "The title"),
    "premise": (_premise, "The premise"),
    "authors-note": (_authors_note, "The author's note"),
    "lore-name": (_lore_name, "The lore entry"),
    "lore-keyword": (_lore_keyword, "The lore entry"),
    "lore-text": (_lore_text, "The lore entry"),
    "lore-removal": (_lore_removal, "The lore entry's name"),
}


async def _table(service: StoryService, config_service: GuildConfigService) -> SessionView:
    """A story with one turn by Alice, Bob to write, and one lore entry."""
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")
    await service.lore.add_lore(CHANNEL, ALICE, "Lamp", ["lamp"], "It never goes out.")
    return view


async def _state(service: StoryService, view: SessionView) -> tuple[object, StoryTranscript]:
    return await service.queries.list_sessions(), await service.queries.transcript(view.id)


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
@pytest.mark.parametrize("field", list(FIELDS))
async def test_every_field_refuses_unstorable_text_and_changes_nothing(
    service: StoryService, config_service: GuildConfigService, field: str, bad: str
) -> None:
    action, named = FIELDS[field]
    view = await _table(service, config_service)
    before = await _state(service, view)

    with pytest.raises(StoryError) as refused:
        await action(service, bad)

    reason = str(refused.value)
    assert reason.startswith(f"{named} contains a character that cannot be stored"), reason
    assert "try again" in reason and bad not in reason
    assert await _state(service, view) == before


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
async def test_the_refusal_of_an_unstorable_turn_is_audited_with_a_safe_excerpt(
    service: StoryService, config_service: GuildConfigService, bad: str
) -> None:
    view = await _table(service, config_service)
    with pytest.raises(ContentRefused) as refused:
        await _turn(service, bad)
    assert refused.value.verdict.rule == "unstorable_character"

    moderation = ModerationService(service.store.sessions, service.guard)
    [audited] = await moderation.audit(GUILD, MOD)
    assert (audited.rule, audited.action, audited.user_id, audited.session_id) == (
        "unstorable_character",
        "refused",
        BOB.user_id,
        view.id,
    )
    assert "I open the door\ufffd." in audited.detail
    assert f"U+{ord(bad):04X}" in audited.detail
    assert bad not in audited.detail


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
async def test_a_server_setting_with_unstorable_text_is_refused(
    config_service: GuildConfigService, bad: str
) -> None:
    before = await config_service.get(GUILD)
    with pytest.raises(InvalidSetting, match="cannot be stored"):
        await config_service.update(GUILD, MOD, custom_genre_instructions=f"Be terse{bad}.")
    assert await config_service.get(GUILD) == before


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
async def test_blocked_words_with_unstorable_text_are_refused_without_echoing_them(
    service: StoryService, config_service: GuildConfigService, bad: str
) -> None:
    moderation = ModerationService(service.store.sessions, service.guard, config_service)
    await moderation.add_blocked_words(GUILD, MOD, ["moonstone"])
    for change in (moderation.add_blocked_words, moderation.remove_blocked_words):
        with pytest.raises(InvalidSetting) as refused:
            await change(GUILD, MOD, [f"moon{bad}stone"])
        assert bad not in str(refused.value)
    assert await moderation.blocked_words(GUILD, MOD) == ("moonstone",)


@pytest.mark.parametrize("bad", list(BAD.values()), ids=list(BAD))
async def test_a_display_name_loses_its_unstorable_characters_and_the_player_still_plays(
    service: StoryService, config_service: GuildConfigService, bad: str
) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=NarratorCadence.ON_DEMAND)
    cara = Actor(3, f"Ca{bad}ra")
    view = await started(service, ALICE, cara)
    await service.turns.submit_turn(CHANNEL, ALICE, "I light the lamp.")
    await service.turns.submit_turn(CHANNEL, cara, "I trim the wick.")
    await service.turns.record_table_talk(CHANNEL, cara, "nice")
    transcript = await service.queries.transcript(view.id)
    assert [p.display_name for p in transcript.session.participants] == ["Alice", "Cara"]
    assert [t.author_name for t in transcript.turns] == ["Alice", "Cara"]
    assert [r.author_name for r in transcript.table_talk] == ["Cara"]
