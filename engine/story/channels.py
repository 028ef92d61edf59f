"""Which channels hold an unfinished story, known without asking the database per message."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import StoryUnavailable
from storage import repositories as repo

log = logging.getLogger(__name__)

# How often, at most, the whole list is read again for a channel not known to hold a story.
REFRESH_SECONDS = 30.0


class StoryChannels:
    """The channels that hold an unfinished story, as far as this process knows.

    Most messages a bot hears are chatter in channels without a story; they must cost no
    database work. Every story this process opens, ends or reads is noted as it happens;
    one another process opens (``taleweaver import`` into a live channel) is found when
    the whole list is read again: at most every ``refresh_s`` seconds, when a message
    arrives in a channel not known to hold a story.

    A channel noted by mistake costs one read (which corrects it); so a note from a
    read never undoes a change noted after the read began.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        refresh_s: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._refresh_s = refresh_s
        self._clock = clock
        self._open: set[int] = set()
        # Each noted change gets the next tick; a read remembers the tick it began at.
        self._tick = 0
        self._changed: dict[int, int] = {}
        self._read_at: float | None = None
        self._reading = asyncio.Lock()

    def mark(self) -> int:
        """Return the moment a read begins, to pass to ``note`` with what it found."""
        return self._tick

    def note(self, channel_id: int, *, holds_story: bool, since: int | None = None) -> None:
        """Record whether a channel holds an unfinished story.

        SINCE is the ``mark`` taken before the read that found this; it is ignored when
        the channel changed after that (a story opened or ended meanwhile).
        """
        if since is None:
            self._tick += 1
            self._changed[channel_id] = self._tick
        elif self._changed.get(channel_id, 0) > since:
            return
        if holds_story:
            self._open.add(channel_id)
        else:
            self._open.discard(channel_id)

    async def may_hold_story(self, channel_id: int) -> bool:
        """Tell whether a channel may hold an unfinished story (False: it surely does not)."""
        if channel_id in self._open:
            return True
        if self._read_at is not None and self._clock() - self._read_at < self._refresh_s:
            return False
        try:
            await self._read_all()
        except StoryUnavailable as exc:
            log.debug("the channels with stories were not read: %s", exc)
            # Never read: nothing is known, so the caller asks (and meets the outage).
            return self._read_at is None
        return channel_id in self._open

    async def _read_all(self) -> None:
        async with self._reading:
            if self._read_at is not None and self._clock() - self._read_at < self._refresh_s:
                return  # another message's read just finished
            since = self.mark()
            async with self._sessions() as db:
                found = set(await repo.open_session_channels(db=db))
            for channel_id, tick in self._changed.items():
                if tick > since:
                    # Changed while the list was read: what was noted stands.
                    if channel_id in self._open:
                        found.add(channel_id)
                    else:
                        found.discard(channel_id)
            self._open = found
            self._changed = {c: t for c, t in self._changed.items() if t > since}
            self._read_at = self._clock()
