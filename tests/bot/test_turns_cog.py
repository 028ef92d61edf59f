from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord
import pytest

from bot.discord.app import BotOptions
from bot.discord.cogs.turns.cog import REFUSED_REACTION, WAITING_REACTION, TurnsCog
from bot.discord.departures import Departures
from engine.errors import StoryUnavailable
from engine.narrator.coordinator import NarratorBusy
from engine.story.views import NarrationRequest

from support.statements import counted
from support.stories import ALICE, BOB, CHANNEL, GUILD, MOD, started
from support.table_runtime import table_runtime

CARA_ID = 3


class FakeNarrator:
    def __init__(self, busy: bool = False) -> None:
        self.requests: list[NarrationRequest] = []
        self.busy = busy

    async def request(self, request: NarrationRequest) -> int:
        if self.busy:
            raise NarratorBusy("The narrator is busy: 9 stories are waiting.")
        self.requests.append(request)
        return 1


@pytest.fixture
def narrator() -> FakeNarrator:
    return FakeNarrator()


@pytest.fixture
def cog(story_db: SimpleNamespace, narrator: FakeNarrator) -> TurnsCog:
    runtime = table_runtime(story_db, narrator)
    # No server in the cache: every player counts as still on it.
    departures = Departures(SimpleNamespace(get_guild=lambda _: None), None, via_messages=True)  # type: ignore[arg-type]
    departures.bind(story_db.story)
    bot = SimpleNamespace(runtime=runtime, options=BotOptions(), departures=departures)
    return TurnsCog(bot)  # type: ignore[arg-type]


def message_from(fake: SimpleNamespace, actor: Any, text: str, **kwargs: Any) -> Any:
    author = fake.Author(actor.user_id, actor.display_name, **kwargs)
    return fake.Message(fake.Channel(CHANNEL), text, author=author)


async def test_current_players_message_becomes_their_turn(
    cog: TurnsCog, story_db: SimpleNamespace, narrator: FakeNarrator, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice lights the lamp.")
    await cog.on_message(message)
    (turn,) = await story_db.story.queries.turns(view.id)
    assert turn.text == "Alice lights the lamp." and turn.discord_message_id == message.id
    assert len(narrator.requests) == 1
    assert message.reactions == [] and message.replies == []


async def test_out_of_turn_message_is_not_recorded(
    cog: TurnsCog, story_db: SimpleNamespace, narrator: FakeNarrator, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, BOB, "Bob jumps in early.")
    await cog.on_message(message)
    assert await story_db.story.queries.turns(view.id) == []
    assert message.reactions == [WAITING_REACTION] and message.replies == []
    assert message.channel.sent == []


@pytest.mark.parametrize("bot_author", [False, True])
async def test_non_players_and_bots_are_ignored(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace, bot_author: bool
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    author = ALICE if bot_author else SimpleNamespace(user_id=CARA_ID, display_name="Cara")
    message = message_from(fake, author, "Hello there", bot=bot_author)
    await cog.on_message(message)
    assert await story_db.story.queries.turns(view.id) == []
    assert message.reactions == [] and message.replies == []


async def test_table_talk_is_kept_but_is_not_a_turn(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    await cog.on_message(message_from(fake, ALICE, "((brb, tea))"))
    await cog.on_message(message_from(fake, BOB, "// loving this"))
    transcript = await story_db.story.queries.transcript(view.id)
    assert transcript.turns == ()
    assert [t.text for t in transcript.table_talk] == ["brb, tea", "loving this"]


@pytest.mark.parametrize("text", ["((brb, tea))", "// loving this", "Anyone up for chess?"])
async def test_chatter_where_no_story_is_played_costs_no_database_work(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace, text: str
) -> None:
    await started(story_db.story, ALICE, BOB)
    elsewhere = fake.Channel(CHANNEL + 1)
    author = fake.Author(ALICE.user_id, ALICE.display_name)
    with counted(story_db.story.store.sessions) as first:
        await cog.on_message(fake.Message(elsewhere, text, author=author))
    # One look at which channels hold stories, then nothing for a while.
    assert len(first) == 1 and "channel_id" in first[0] and "INSERT" not in first[0]
    with counted(story_db.story.store.sessions) as later:
        for _ in range(3):
            await cog.on_message(fake.Message(elsewhere, text, author=author))
    assert later == []
    # The story's own channel is known without a look.
    view = await story_db.story.queries.in_channel(CHANNEL)
    assert view is not None and await story_db.story.queries.may_hold_story(CHANNEL)


async def test_table_talk_breaking_the_rules_is_not_kept_and_is_marked(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, blocked_words=["moonstone"])
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, BOB, "// where is the moonstone lol")
    await cog.on_message(message)
    assert (await story_db.story.queries.transcript(view.id)).table_talk == ()
    assert message.reactions == [REFUSED_REACTION]
    assert "rephrase" in message.replies[0][0]


async def test_refused_turn_gets_a_mark_and_a_reply_that_deletes_itself(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, max_turn_chars=20)
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "This turn is far too long for the server's rules.")
    await cog.on_message(message)
    assert await story_db.story.queries.turns(view.id) == []
    assert message.reactions == [REFUSED_REACTION]
    ((reason, kwargs),) = message.replies
    assert "too long" in reason
    assert kwargs["delete_after"] == BotOptions().refusal_seconds
    assert kwargs["allowed_mentions"].to_dict() == {"parse": []}
    assert kwargs["mention_author"] is False


async def test_next_player_is_pinged_when_the_narrator_waits(
    cog: TurnsCog, story_db: SimpleNamespace, narrator: FakeNarrator, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice opens the door.")
    await cog.on_message(message)
    assert narrator.requests == []
    (ping,) = message.channel.sent
    assert f"<@{BOB.user_id}>" in ping.content
    assert message.channel.send_kwargs[0]["allowed_mentions"].to_dict()["users"] == [BOB.user_id]


async def test_busy_narrator_is_explained(story_db: SimpleNamespace, fake: SimpleNamespace) -> None:
    runtime = table_runtime(story_db, FakeNarrator(busy=True))
    cog = TurnsCog(SimpleNamespace(runtime=runtime, options=BotOptions()))  # type: ignore[arg-type]
    await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice opens the door.")
    await cog.on_message(message)
    ((reply, _),) = message.replies
    assert "busy" in reply


def edit_of(message: Any, text: str) -> Any:
    before = SimpleNamespace(content=message.content)
    message.content = text
    return SimpleNamespace(
        message=message,
        data={"content": text},
        cached_message=before,
        channel_id=message.channel.id,
    )


async def test_editing_the_latest_turn_updates_it(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice opens the dor.")
    await cog.on_message(message)
    await cog.on_raw_message_edit(edit_of(message, "Alice opens the door."))
    (turn,) = await story_db.story.queries.turns(view.id)
    assert turn.text == "Alice opens the door." and turn.edited_at is not None


async def test_editing_an_older_message_changes_nothing(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    view = await started(story_db.story, ALICE, BOB)
    first = message_from(fake, ALICE, "Alice opens the door.")
    await cog.on_message(first)
    await cog.on_message(message_from(fake, BOB, "Bob follows."))
    await cog.on_raw_message_edit(edit_of(first, "Alice slams the door."))
    turns = await story_db.story.queries.turns(view.id)
    assert [t.text for t in turns] == ["Alice opens the door.", "Bob follows."]
    assert first.replies == [] and first.reactions == []


async def test_system_messages_are_ignored(
    cog: TurnsCog, story_db: SimpleNamespace, fake: SimpleNamespace
) -> None:
    view = await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice pinned a message.")
    message.type = discord.MessageType.pins_add
    await cog.on_message(message)
    assert await story_db.story.queries.turns(view.id) == []


def database_down(story_db: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every lookup of a channel's story fail as with the database unreachable."""

    async def unreachable(channel_id: int) -> None:
        raise StoryUnavailable()

    monkeypatch.setattr(story_db.story.queries, "in_channel", unreachable)


async def test_a_player_writing_while_the_database_is_down_is_told_nothing_was_saved(
    cog: TurnsCog,
    story_db: SimpleNamespace,
    fake: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    view = await started(story_db.story, ALICE, BOB)
    await cog.on_message(message_from(fake, ALICE, "Alice opens the door."))
    database_down(story_db, monkeypatch)

    turn = message_from(fake, BOB, "Bob follows.")
    chatter = message_from(fake, SimpleNamespace(user_id=CARA_ID, display_name="Cara"), "hi")
    await cog.on_message(turn)
    await cog.on_message(chatter)

    assert turn.reactions == [REFUSED_REACTION]
    ((reason, _),) = turn.replies
    assert reason == f"{REFUSED_REACTION} {StoryUnavailable()}"
    assert chatter.reactions == [] and chatter.replies == [], "only the story's players hear"
    monkeypatch.undo()
    assert [t.text for t in await story_db.story.queries.turns(view.id)] == [
        "Alice opens the door."
    ]


async def test_a_channel_without_a_known_story_stays_quiet_while_the_database_is_down(
    cog: TurnsCog,
    story_db: SimpleNamespace,
    fake: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    database_down(story_db, monkeypatch)
    message = message_from(fake, ALICE, "Is anyone here?")
    await cog.on_message(message)
    assert message.reactions == [] and message.replies == []


async def test_an_edit_while_the_database_is_down_is_marked_not_saved(
    cog: TurnsCog,
    story_db: SimpleNamespace,
    fake: SimpleNamespace,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await story_db.configs.update(GUILD, MOD, narrator_cadence="on_demand")
    await started(story_db.story, ALICE, BOB)
    message = message_from(fake, ALICE, "Alice opens the dor.")
    await cog.on_message(message)
    database_down(story_db, monkeypatch)
    await cog.on_raw_message_edit(edit_of(message, "Alice opens the door."))
    assert message.reactions == [REFUSED_REACTION]
    ((reason, _),) = message.replies
    assert reason.startswith(f"{REFUSED_REACTION} Your edit was not saved: The story database")
