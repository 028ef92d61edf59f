from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot


async def setup(bot: TaleweaverBot) -> None:
    """Load the /storyconfig commands."""
    from bot.discord.cogs.storyconfig.cog import StoryConfigCog

    await bot.add_cog(StoryConfigCog(bot))
