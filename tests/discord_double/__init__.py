"""A local Discord API double for end-to-end tests of the real discord.py client.

Every REST request is checked against Discord's published OpenAPI spec; anything Discord
would reject is recorded in ``double.violations`` and fails the test at teardown.

Bring the fixture into a conftest with
``from discord_double.fixture import discord_double``, then::

    async def test_story_starts(discord_double):
        bot = make_bot(discord_double.guild.id)  # guild_ready_timeout=0.05 helps
        async with discord_double.run_client(bot):
            record = await discord_double.invoke(
                "alice", "story", "story", ["start"], {"genre": "noir"}
            )
            await discord_double.wait_for_response(record)
            [reply] = discord_double.interaction_responses(record)
            assert not reply.ephemeral
"""

from __future__ import annotations

from .interactions import InvocationError
from .models import (
    EPHEMERAL,
    CallbackRecord,
    DoubleChannel,
    DoubleUser,
    InteractionRecord,
    Reaction,
    RequestRecord,
    StoredMessage,
    UploadedFile,
)
from .server import DiscordDouble
from .spec import ApiSpec, load_spec, locate_spec, validate_command_definitions

__all__ = [
    "EPHEMERAL",
    "ApiSpec",
    "CallbackRecord",
    "DiscordDouble",
    "DoubleChannel",
    "DoubleUser",
    "InteractionRecord",
    "InvocationError",
    "Reaction",
    "RequestRecord",
    "StoredMessage",
    "UploadedFile",
    "load_spec",
    "locate_spec",
    "validate_command_definitions",
]
