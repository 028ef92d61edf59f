from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot


async def setup(bot: TaleweaverBot) -> None:
    """Load the listener for members leaving, channels deleted and the bot removed."""
    from bot.discord.cogs.departures.cog import DeparturesCog

    await bot.add_cog(DeparturesCog(bot))
