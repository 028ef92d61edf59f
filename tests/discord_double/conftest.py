from __future__ import annotations

from discord_double.fixture import discord_double

__all__ = ["discord_double"]
