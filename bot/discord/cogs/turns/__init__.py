from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.discord.app import TaleweaverBot


async def setup(bot: TaleweaverBot) -> None:
    """Load the listener that turns plain messages into story turns."""
    from bot.discord.cogs.turns.cog import TurnsCog

    await bot.add_cog(TurnsCog(bot))
