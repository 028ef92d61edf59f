"""Choices offered by more than one command."""

from __future__ import annotations

from discord import app_commands

from bot.discord.formatting import genre_name
from engine.rules.genres import GENRE_KEYS

GENRE_CHOICES = [app_commands.Choice(name=genre_name(key), value=key) for key in GENRE_KEYS]
