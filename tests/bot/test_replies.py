from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import discord

from bot.discord.replies import acknowledge, reply, send_error


def command_by(fake: SimpleNamespace) -> Any:
    return fake.Interaction(object(), fake.Author(1, "Alice"))


async def test_acknowledging_a_command_shows_thinking_until_the_first_reply_replaces_it(
    fake: SimpleNamespace,
) -> None:
    interaction = command_by(fake)
    await acknowledge(interaction)
    assert interaction.response.deferred == {"thinking": True}
    first = await reply(interaction, "Alice rings the bell.")
    second = await reply(interaction, "Bob, your turn.")
    (edit,) = interaction.original_edits
    assert edit["content"] == "Alice rings the bell." and "ephemeral" not in edit
    (followup,) = interaction.followup.sent
    assert followup["content"] == "Bob, your turn."
    assert first is not None and second is not None and first != second


async def test_a_refusal_after_acknowledging_removes_the_public_answer_and_stays_private(
    fake: SimpleNamespace,
) -> None:
    interaction = command_by(fake)
    await acknowledge(interaction)
    await send_error(interaction, "It is Bob's turn.")
    assert interaction.original_deleted
    assert interaction.original_edits == []
    (sent,) = interaction.followup.sent
    assert sent["ephemeral"] is True and sent["content"] == "It is Bob's turn."


async def test_acknowledging_a_button_shows_nothing_and_replies_follow_up(
    fake: SimpleNamespace,
) -> None:
    interaction = fake.Interaction(
        object(), fake.Author(1, "Alice"), kind=discord.InteractionType.component
    )
    await acknowledge(interaction)
    await acknowledge(interaction)  # answered already: nothing more is sent
    assert interaction.response.deferred == {}
    await reply(interaction, "Only you see this.", ephemeral=True)
    assert interaction.original_edits == [] and not interaction.original_deleted
    (sent,) = interaction.followup.sent
    assert sent["ephemeral"] is True
