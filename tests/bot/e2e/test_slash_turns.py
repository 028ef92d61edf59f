"""Without the Message Content intent players write with `/story write`; threads work too."""

from __future__ import annotations

from typing import TYPE_CHECKING

from storage.models import TurnKind

from discord_double import StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable


async def test_without_message_content_turns_are_written_with_a_slash_command(
    table: StoryTable,
) -> None:
    async with table.running(options=table.options(message_content=False)) as bot:
        assert not bot.intents.message_content
        await table.short_passages()
        await table.start_story("alice", "bob")

        # Plain messages reach the bot without their text: they are left alone.
        ignored = await table.say("alice", "Alice writes in the channel out of habit.")
        record = await table.command("alice", "story write", text="Alice opens the sea door.")
        shown = await table.reply_to(record)
        assert shown.content == "**Alice:** Alice opens the sea door."
        passage = await table.passage(after=shown)
        await table.ping("bob", after=passage)
        assert "/story write" in table.bot_messages()[-1].content
        assert table.reactions_on(ignored) == []
        turns = await table.turns()
        assert [(t.kind, t.text) for t in turns] == [
            (TurnKind.PLAYER, "Alice opens the sea door."),
            (TurnKind.NARRATOR, passage.content),
        ]
        assert turns[0].discord_message_id == shown.id
    table.audit_mentions()


async def test_a_story_started_in_a_thread_is_played_there(table: StoryTable) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        record = await table.command(
            "alice",
            "story start",
            title="The Lantern",
            premise="A lighthouse keeper finds a door in the sea.",
            thread=True,
        )
        pointer = await table.reply_to(record)
        [thread] = double.threads
        assert thread.mention in pointer.content and thread.name == "The Lantern"
        for user, command in (("bob", "join"), ("alice", "begin")):
            record = await double.invoke(user, thread, "story", [command])
            await double.wait_for_response(record)

        turn = await double.send_message("alice", thread, "Alice climbs to the lamp room.")

        def finished(message: StoredMessage) -> bool:
            return any(c.startswith("tw:retry:") for c in message.custom_ids())

        passage = await double.wait_for_message(thread, finished, after=turn, timeout=60)
        ping = await double.wait_for_message(
            thread, lambda m: table.user("bob").mention in m.content, after=passage
        )
        assert ping.pinged_user_ids == [table.user("bob").id]
        assert table.bot_messages() == [pointer], "the parent channel only gets the pointer"
        view = await table.running_bot.runtime.story.queries.in_channel(thread.id)
        assert view is not None and view.title == "The Lantern"
        assert await table.running_bot.runtime.story.queries.in_channel(table.channel_id) is None
    table.audit_mentions()
