"""Members who left the server: found out, marked away in their stories, and announced.

With the privileged Server Members intent Discord says at once when a member leaves
(GUILD_MEMBER_REMOVE). Without it the bot finds out when it is about to ping the player
whose turn it is: it looks the member up, and Discord answers 10007 Unknown Member. Either
way the engine marks them away in every story of that server, their turn passes on at
once, and each story's channel is told.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.discord.formatting import NO_MENTIONS, Ping, plain, turn_prompt
from engine.story import StoryService
from engine.story.views import DepartureOutcome, SessionView

log = logging.getLogger(__name__)

# Discord's answers to a lookup of someone who is not on the server (any more).
UNKNOWN_MEMBER = 10007
UNKNOWN_USER = 10013

ChannelResolver = Callable[[int], Awaitable["discord.abc.Messageable | None"]]


class Departures:
    """Tell whether a story's current player is still on the server; handle those who left."""

    def __init__(
        self, client: discord.Client, resolve_channel: ChannelResolver, *, via_messages: bool
    ) -> None:
        self._client = client
        self._resolve_channel = resolve_channel
        self._via_messages = via_messages
        self._sessions: StoryService | None = None

    def bind(self, sessions: StoryService) -> None:
        """Use SESSIONS to mark departed members away."""
        self._sessions = sessions

    @property
    def sessions(self) -> StoryService:
        """Return the bound session service."""
        if self._sessions is None:
            raise RuntimeError("departures are not bound to a session service")
        return self._sessions

    async def is_member(self, guild_id: int, user_id: int) -> bool:
        """Tell whether USER_ID is on the server; only Discord's "unknown member" says no.

        A member in the cache is there; otherwise one lookup asks Discord. Any other failure
        (a rate limit, an outage, a server the bot cannot reach) counts as still there.
        """
        guild = self._client.get_guild(guild_id)
        if guild is None:
            return True
        if guild.get_member(user_id) is not None:
            return True
        try:
            await guild.fetch_member(user_id)
        except discord.NotFound as exc:
            return exc.code not in (UNKNOWN_MEMBER, UNKNOWN_USER)
        except discord.HTTPException as exc:
            log.info("could not look up member %s of server %s: %s", user_id, guild_id, exc)
        return True

    async def current_player_left(self, view: SessionView) -> bool:
        """Tell whether the player whose turn it is has left the server (the ping would be lost)."""
        player = view.current_player
        if player is None or view.status != "active" or view.narrator_pending or view.voting:
            return False
        return not await self.is_member(view.guild_id, player.user_id)

    async def prompt_turn(self, channel: discord.abc.Messageable, view: SessionView) -> None:
        """Ping the player whose turn it is or, when they left the server, pass their turn on."""
        player = view.current_player
        if player is not None and await self.current_player_left(view):
            await self.member_left(view.guild_id, player.user_id)
            return
        ping = turn_prompt(view, via_messages=self._via_messages)
        if ping is not None:
            await channel.send(ping.content, allowed_mentions=ping.allowed_mentions)

    async def member_left(self, guild_id: int, user_id: int) -> list[DepartureOutcome]:
        """Mark a member who left away in every story of the server, and say so in each."""
        outcomes = await self.sessions.lifecycle.depart(guild_id, user_id)
        for outcome in outcomes:
            await self.announce(outcome)
        return outcomes

    async def announce(self, outcome: DepartureOutcome) -> None:
        """Say in the story's channel that a player left; ping whoever has the turn now."""
        channel = await self._resolve_channel(outcome.session.channel_id)
        if channel is None:
            return
        lead = departure_notice(outcome)
        ping = (
            turn_prompt(outcome.session, via_messages=self._via_messages, lead=f"{lead} ")
            if outcome.had_turn
            else None
        )
        ping = ping or Ping(lead, NO_MENTIONS)
        try:
            await channel.send(ping.content, allowed_mentions=ping.allowed_mentions)
        except discord.HTTPException as exc:
            log.warning("session %s: departure not announced (%s)", outcome.session.id, exc)


def departure_notice(outcome: DepartureOutcome) -> str:
    """Describe a player's departure from the server, and what became of the story."""
    name = plain(outcome.departed.display_name)
    text = f"🚪 {name} is no longer on this server, so they are away"
    if outcome.had_turn:
        text += " and their turn passes on"
    text += "; they can `/story join` again if they come back."
    session = outcome.session
    if session.status == "paused" and not session.rotation:
        text += " Nobody is left, so the story pauses until someone joins."
    return text
