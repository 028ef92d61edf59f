from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import pytest
from discord import app_commands

from bot.discord.app import BotOptions, explain_command_error
from bot.discord.cogs.story.cog import StoryCog
from engine.errors import SessionNotFound
from engine.export import ExportFile, ExportFormat, ExportOptions
from engine.story.views import NarrationRequest

from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started
from support.table_runtime import table_runtime


class FakeNarrator:
    def __init__(self) -> None:
        self.requests: list[NarrationRequest] = []

    async def request(self, request: NarrationRequest) -> int:
        self.requests.append(request)
        return 1


class FakeNarration:
    def __init__(self) -> None:
        self.discarded: list[int] = []

    async def discard_session(self, session_id: int, *, keep_job: str | None = None) -> None:
        self.discarded.append(session_id)


class FakeExports:
    def __init__(self, data: bytes = b"# The Lantern\n") -> None:
        self.data = data
        self.calls: list[tuple[int, ExportFormat, ExportOptions]] = []

    async def export(
        self, session_id: int, fmt: ExportFormat, options: ExportOptions, **kwargs: Any
    ) -> ExportFile:
        self.calls.append((session_id, fmt, options))
        assert kwargs["guild_id"] == GUILD and kwargs["actor"].user_id == ALICE.user_id
        return ExportFile(f"the-lantern.{fmt.value}", fmt.media_type, self.data)

    async def find(self, guild_id: int, actor: Any, query: str = "", *, limit: int = 25) -> list:
        return []


@pytest.fixture
def bot(story_db: SimpleNamespace) -> SimpleNamespace:
    runtime = table_runtime(story_db, FakeNarrator())
    return SimpleNamespace(
        runtime=runtime,
        exports=FakeExports(),
        narration=FakeNarration(),
        options=BotOptions(),
        via_messages=True,
    )


@pytest.fixture
def cog(bot: SimpleNamespace) -> StoryCog:
    return StoryCog(bot)  # type: ignore[arg-type]


def interaction_by(fake: SimpleNamespace, bot: Any, actor: Any, **kwargs: Any) -> Any:
    return fake.Interaction(bot, fake.Author(actor.user_id, actor.display_name), **kwargs)


def callback(command: Any) -> Any:
    return command.callback


async def test_write_shows_the_turn_and_calls_the_narrator(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.write)(cog, interaction, "Alice rings the **bell**.")
    # Answered ("thinking") before the turn is stored; the turn then fills that answer.
    assert interaction.response.deferred == {"thinking": True}
    assert interaction.response.sent == []
    (shown,) = interaction.original_edits
    assert shown["content"] == "**Alice:** Alice rings the **bell**."
    assert shown["allowed_mentions"].to_dict() == {"parse": []}
    (turn,) = await story_db.story.queries.turns(view.id)
    assert turn.discord_message_id is not None
    assert len(bot.runtime.narrator.requests) == 1


async def test_write_pings_only_the_next_player_when_the_narrator_waits(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.write)(cog, interaction, "Alice rings the bell.")
    (ping,) = interaction.followup.sent
    assert f"<@{BOB.user_id}>" in ping["content"]
    assert ping["allowed_mentions"].to_dict()["users"] == [BOB.user_id]


async def test_undo_announces_and_pings_the_player_whose_turn_it_is_again(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    await started(story_db.story, ALICE, BOB)
    await story_db.story.turns.submit_turn(CHANNEL, ALICE, "Alice rings the bell.")
    await story_db.story.turns.submit_turn(CHANNEL, BOB, "Bob answers the door.")
    interaction = interaction_by(fake, bot, ALICE)  # the host
    await callback(StoryCog.undo)(cog, interaction)
    (shown,) = interaction.response.sent
    assert "took back Bob's turn 2" in shown["content"]
    assert shown["allowed_mentions"].to_dict()["users"] == [BOB.user_id]


async def test_undoing_ones_own_turn_pings_nobody(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    await started(story_db.story, ALICE, BOB)
    await story_db.story.turns.submit_turn(CHANNEL, ALICE, "Alice rings the bell.")
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.undo)(cog, interaction)
    (shown,) = interaction.response.sent
    assert "<@1>" in shown["content"]
    assert shown["allowed_mentions"].to_dict() == {"parse": []}


async def test_skip_by_a_player_is_a_vote(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, BOB)
    await callback(StoryCog.skip)(cog, interaction)
    (shown,) = interaction.response.sent
    assert "votes to skip Alice" in shown["content"]
    assert shown["allowed_mentions"].to_dict() == {"parse": []}


async def test_start_records_an_age_restricted_channel(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    channel = fake.Channel(CHANNEL)
    channel.is_nsfw = lambda: True  # type: ignore[attr-defined]
    interaction = interaction_by(fake, bot, ALICE, channel=channel)
    await callback(StoryCog.start)(cog, interaction, "Night Shift", "A hospital at 3 am.")
    view = await story_db.story.queries.in_channel(CHANNEL)
    assert view is not None and view.age_restricted and view.genre == "fantasy"
    assert "Night Shift" in interaction.response.sent[0]["content"]


async def test_status_without_a_story_is_a_story_error(
    cog: StoryCog, bot: SimpleNamespace, fake: SimpleNamespace
) -> None:
    interaction = interaction_by(fake, bot, ALICE)
    with pytest.raises(SessionNotFound):
        await callback(StoryCog.status)(cog, interaction)


FORMAT = app_commands.Choice(name="Markdown", value="markdown")


async def test_export_attaches_a_small_file(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.export)(cog, interaction, FORMAT, None, True, False)
    assert interaction.response.deferred == {"ephemeral": True, "thinking": True}
    (sent,) = interaction.followup.sent
    assert sent["file"].filename == "the-lantern.markdown"
    assert sent["ephemeral"] is True
    assert bot.exports.calls == [
        (view.id, ExportFormat.MARKDOWN, ExportOptions(include_table_talk=True))
    ]


async def test_export_zips_a_file_over_the_limit(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await started(story_db.story, ALICE, BOB)
    bot.exports.data = b"The sea was calm. " * 2000
    interaction = interaction_by(fake, bot, ALICE, filesize_limit=4000)
    await callback(StoryCog.export)(cog, interaction, FORMAT, None, False, False)
    (sent,) = interaction.followup.sent
    assert sent["file"].filename == "the-lantern.zip" and "zipped" in sent["content"]


async def test_export_too_large_even_zipped_gives_the_command(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    bot.exports.data = os.urandom(20_000)
    interaction = interaction_by(fake, bot, ALICE, filesize_limit=4000)
    await callback(StoryCog.export)(cog, interaction, FORMAT, None, False, True)
    (sent,) = interaction.followup.sent
    assert "file" not in sent
    assert f"`taleweaver export {view.id} --format markdown --alternatives`" in sent["content"]


async def test_export_defaults_to_the_latest_story_of_the_channel(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    await story_db.story.lifecycle.end(CHANNEL, ALICE)
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.export)(cog, interaction, FORMAT, None, False, False)
    assert bot.exports.calls[0][0] == view.id


def test_story_errors_become_their_message() -> None:
    error = app_commands.CommandInvokeError(
        SimpleNamespace(name="status", qualified_name="story status"),  # type: ignore[arg-type]
        SessionNotFound("There is no story in this channel."),
    )
    assert explain_command_error(SimpleNamespace(command=None), error) == (  # type: ignore[arg-type]
        "There is no story in this channel."
    )


async def test_leaving_out_of_turn_pings_nobody(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, BOB)
    await callback(StoryCog.leave)(cog, interaction)
    (shown,) = interaction.response.sent
    assert "Bob leaves" in shown["content"] and "<@" not in shown["content"]


async def test_leaving_on_ones_turn_passes_it_on(
    cog: StoryCog, bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await started(story_db.story, ALICE, BOB)
    interaction = interaction_by(fake, bot, ALICE)
    await callback(StoryCog.leave)(cog, interaction)
    (shown,) = interaction.response.sent
    assert shown["allowed_mentions"].to_dict()["users"] == [BOB.user_id]
