from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot


async def setup(bot: TaleweaverBot) -> None:
    """Load the /story commands."""
    from bot.discord.cogs.story.cog import StoryCog

    await bot.add_cog(StoryCog(bot))
