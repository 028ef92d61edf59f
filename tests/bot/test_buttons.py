from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord.app import BotOptions
from bot.discord.components import RetryButton, UndoButton, VersionSelect
from engine.story.views import NarrationRequest

from support.stories import ALICE, BOB, CHANNEL, started
from support.table_runtime import table_runtime


class FakeNarrator:
    def __init__(self) -> None:
        self.requests: list[NarrationRequest] = []

    async def request(self, request: NarrationRequest) -> int:
        self.requests.append(request)
        return 1


class FakeNarration:
    async def discard_session(self, session_id: int, *, keep_job: str | None = None) -> None:
        return None


@pytest.fixture
def bot(story_db: SimpleNamespace) -> SimpleNamespace:
    runtime = table_runtime(story_db, FakeNarrator())
    return SimpleNamespace(
        runtime=runtime, narration=FakeNarration(), options=BotOptions(), via_messages=True
    )


async def retried_story(sessions: Any) -> int:
    """Return a story whose latest turn (2) is a narrator passage with one earlier version."""
    view = await started(sessions, ALICE, BOB)
    outcome = await sessions.turns.submit_turn(CHANNEL, ALICE, "Alice rings the bell.")
    await sessions.ledger.record_narration(view.id, outcome.narration.job_id, "First version.")
    request = await sessions.ledger.retry_narration(CHANNEL, ALICE)
    await sessions.ledger.record_narration(view.id, request.job_id, "Second version.")
    return int(view.id)


def pressed_by(fake: SimpleNamespace, bot: Any, actor: Any, message: Any = None) -> Any:
    author = fake.Author(actor.user_id, actor.display_name)
    channel = message.channel if message is not None else fake.Channel(CHANNEL)
    return fake.Interaction(
        bot, author, channel=channel, message=message, kind=discord.InteractionType.component
    )


async def test_retry_on_an_older_passage_is_refused_privately(
    bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    session_id = await retried_story(story_db.story)
    interaction = pressed_by(fake, bot, ALICE)
    await RetryButton(session_id, 1).callback(interaction)
    # Acknowledged at once without a visible answer, then refused in a private follow-up.
    assert interaction.response.deferred == {}
    (sent,) = interaction.followup.sent
    assert sent["ephemeral"] is True and "latest passage" in sent["content"]
    assert bot.runtime.narrator.requests == []


async def test_retry_on_the_latest_passage_asks_the_narrator(
    bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    session_id = await retried_story(story_db.story)
    interaction = pressed_by(fake, bot, BOB)
    await RetryButton(session_id, 2).callback(interaction)
    assert interaction.response.deferred == {}
    (sent,) = interaction.followup.sent
    assert sent["ephemeral"] is False and "another version" in sent["content"]
    (request,) = bot.runtime.narrator.requests
    assert request.retry_of_turn == 2


async def test_undo_removes_the_passage_and_its_message(
    bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    session_id = await retried_story(story_db.story)
    channel = fake.Channel(CHANNEL)
    message = await channel.send("Second version.")
    await story_db.story.turns.set_turn_message(session_id, 2, message.id)
    interaction = pressed_by(fake, bot, ALICE, message)
    await UndoButton(session_id, 2).callback(interaction)
    assert "took back the narrator's passage" in interaction.response.sent[0]["content"]
    assert message.deleted
    assert [t.number for t in await story_db.story.queries.turns(session_id)] == [1]


async def test_choosing_an_earlier_version_edits_the_message_in_place(
    bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    session_id = await retried_story(story_db.story)
    message = fake.Message(fake.Channel(CHANNEL), "Second version.")
    menu = VersionSelect(session_id, 2, ("First version.",))
    menu.item._values = ["0"]
    interaction = pressed_by(fake, bot, BOB, message)
    await menu.callback(interaction)
    (edit,) = interaction.response.edited
    assert edit["content"] == "First version."
    rows = edit["view"].to_components()
    assert rows[1]["components"][0]["options"][0]["label"] == "1. Second version."
    (turn,) = [t for t in await story_db.story.queries.turns(session_id) if t.number == 2]
    assert turn.text == "First version." and turn.alternatives == ("Second version.",)


async def test_choosing_a_version_needs_a_player(
    bot: SimpleNamespace, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    session_id = await retried_story(story_db.story)
    menu = VersionSelect(session_id, 2, ("First version.",))
    menu.item._values = ["0"]
    stranger = SimpleNamespace(user_id=77, display_name="Stranger")
    interaction = pressed_by(fake, bot, stranger, fake.Message(fake.Channel(), "x"))
    await menu.callback(interaction)
    (sent,) = interaction.response.sent
    assert sent["ephemeral"] is True and "Only players" in sent["content"]
