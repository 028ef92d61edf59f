"""Actors and shortcuts for story scenarios."""

from __future__ import annotations

from engine.actors import Actor
from engine.story import StoryService
from engine.story.views import SessionView

GUILD = 1
CHANNEL = 100
ALICE = Actor(1, "Alice")
BOB = Actor(2, "Bob")
CARA = Actor(3, "Cara")
DAN = Actor(4, "Dan")
MOD = Actor(99, "Mod", is_moderator=True)


async def started(
    service: StoryService, *players: Actor, begin: bool = True, channel: int = CHANNEL
) -> SessionView:
    """Start a story hosted by the first player, let the rest join, and begin it."""
    host, *others = players
    view = await service.lifecycle.start(
        guild_id=GUILD,
        channel_id=channel,
        actor=host,
        title="The Lantern",
        genre="fantasy",
        premise="A lighthouse keeper finds a door in the sea.",
    )
    for other in others:
        view = await service.lifecycle.join(channel, other)
    if begin:
        view = await service.lifecycle.begin(channel, host)
    return view
