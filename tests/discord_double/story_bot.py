"""A small bot for the double's own tests: a /story group, a view, a modal."""

from __future__ import annotations

import asyncio
import io
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands


class TurnView(discord.ui.View):
    """A button that records who pressed it."""

    def __init__(self) -> None:
        super().__init__(timeout=None)
        self.pressed_by: list[int] = []

    @discord.ui.button(
        label="Take my turn", custom_id="turn:take", style=discord.ButtonStyle.primary
    )
    async def take(self, interaction: discord.Interaction, button: discord.ui.Button[Any]) -> None:
        self.pressed_by.append(interaction.user.id)
        await interaction.response.send_message("Your turn!", ephemeral=True)

    @discord.ui.button(label="Pass", custom_id="turn:pass")
    async def pass_turn(
        self, interaction: discord.Interaction, button: discord.ui.Button[Any]
    ) -> None:
        await interaction.response.edit_message(content="Passed.", view=None)


class NameModal(discord.ui.Modal, title="Name the hero"):
    """A modal with one text field."""

    hero: discord.ui.TextInput[Any] = discord.ui.TextInput(
        label="Hero", custom_id="hero", max_length=40
    )

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await interaction.response.send_message(f"The hero is {self.hero.value}.")


class StoryBot(commands.Bot):
    """A minimal bot with a /story group, synced to the double's guild."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(
            command_prefix="!",
            intents=intents,
            guild_ready_timeout=0.05,
            chunk_guilds_at_startup=False,
        )
        self.guild_id = guild_id
        self.seen: list[discord.Message] = []
        self.view = TurnView()
        self.synced: list[app_commands.AppCommand] = []
        self.add_slash_commands()

    def add_slash_commands(self) -> None:
        story = app_commands.Group(name="story", description="Tell a story together")
        config = app_commands.Group(name="config", description="Settings", parent=story)
        guild = discord.Object(self.guild_id)

        @story.command(name="start", description="Start a story")
        @app_commands.describe(genre="The genre", rounds="How many rounds")
        @app_commands.choices(
            genre=[app_commands.Choice(name=g.title(), value=g) for g in ("fantasy", "noir")]
        )
        async def start(interaction: discord.Interaction, genre: str, rounds: int = 3) -> None:
            await interaction.response.defer(thinking=True)
            await asyncio.sleep(0.01)
            await interaction.followup.send(
                f"A {genre} story of {rounds} rounds begins.", view=self.view
            )

        @story.command(name="status", description="Where the story is")
        async def status(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Nobody is writing yet.", ephemeral=True)

        @story.command(name="export", description="Export the story")
        async def export(interaction: discord.Interaction) -> None:
            data = io.BytesIO(b"Once upon a time.\n")
            await interaction.response.send_message(
                "Here it is.", file=discord.File(data, filename="story.md")
            )

        @story.command(name="join", description="Join as a character")
        async def join(interaction: discord.Interaction, character: str) -> None:
            await interaction.response.send_message(f"{character} joins.")

        @join.autocomplete("character")
        async def characters(
            interaction: discord.Interaction, current: str
        ) -> list[app_commands.Choice[str]]:
            names = ["Aria", "Bram", "Corin"]
            return [app_commands.Choice(name=n, value=n) for n in names if current in n]

        @story.command(name="revise", description="Draft, revise, and add a note")
        async def revise(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Draft")
            await interaction.edit_original_response(content="Final")
            note = await interaction.followup.send("Note", ephemeral=True, wait=True)
            await note.edit(content="Note, revised")
            original = await interaction.original_response()
            await interaction.followup.send(f"Original says {original.content}")

        @story.command(name="retract", description="Say something and take it back")
        async def retract(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("Oops")
            await interaction.delete_original_response()

        @story.command(name="name", description="Name the hero")
        async def name(interaction: discord.Interaction) -> None:
            await interaction.response.send_modal(NameModal())

        @config.command(name="rating", description="Set the content rating")
        @app_commands.default_permissions(manage_guild=True)
        async def rating(
            interaction: discord.Interaction, level: str, member: discord.Member
        ) -> None:
            can_manage = interaction.permissions.manage_guild
            await interaction.response.send_message(
                f"{level} for {member.display_name}; manage={can_manage}", ephemeral=True
            )

        self.tree.add_command(story, guild=guild)

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        """Skip discord.py's 5-second pause before identifying again."""

    async def setup_hook(self) -> None:
        self.add_view(self.view)
        self.synced = await self.tree.sync(guild=discord.Object(self.guild_id))

    async def on_message(self, message: discord.Message) -> None:
        self.seen.append(message)
