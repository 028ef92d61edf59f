"""A story's lore book: named entries the narrator is shown when their keywords come up."""

from __future__ import annotations

import logging

from sqlalchemy.ext.asyncio import AsyncSession

from engine.actors import Actor
from engine.errors import (
    InvalidState,
    PermissionDenied,
    TurnRejected,
)
from engine.safety import TextKind
from engine.safety.storable import find_unstorable, unstorable_reason
from engine.story.store import StoryStore
from engine.story.views import (
    LoreView,
)
from storage import repositories as repo
from storage.models import (
    LoreEntry,
)

log = logging.getLogger(__name__)

MAX_LORE_NAME_CHARS = 100
MAX_LORE_TEXT_CHARS = 1000
MAX_LORE_KEYWORDS = 10
MAX_LORE_KEYWORD_CHARS = 50
# The longest comma-separated keyword list a front-end need accept: every list the
# engine takes ("a, b, …", at most MAX_LORE_KEYWORDS of MAX_LORE_KEYWORD_CHARS) fits.
MAX_LORE_KEYWORDS_TEXT = MAX_LORE_KEYWORDS * (MAX_LORE_KEYWORD_CHARS + 2)


class LoreBook:
    """Add, list and remove a story's lore entries."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def add_lore(
        self, channel_id: int, actor: Actor, name: str, keywords: list[str], text: str
    ) -> LoreView:
        """Add or replace a lore entry (players, the host and moderators)."""
        name, text = name.strip(), text.strip()
        clean_keywords = sorted({k.strip() for k in keywords if k.strip()}, key=str.casefold)
        if not name or len(name) > MAX_LORE_NAME_CHARS:
            raise TurnRejected(
                f"A lore entry needs a name of at most {MAX_LORE_NAME_CHARS} characters."
            )
        if not text or len(text) > MAX_LORE_TEXT_CHARS:
            raise TurnRejected(
                f"A lore entry needs a text of at most {MAX_LORE_TEXT_CHARS} characters."
            )
        if len(clean_keywords) > MAX_LORE_KEYWORDS:
            raise TurnRejected(f"At most {MAX_LORE_KEYWORDS} keywords per lore entry.")
        if any(len(k) > MAX_LORE_KEYWORD_CHARS for k in clean_keywords):
            raise TurnRejected(
                f"A lore keyword may have at most {MAX_LORE_KEYWORD_CHARS} characters."
            )
        if not clean_keywords:
            clean_keywords = [name]

        async def work(db: AsyncSession) -> LoreView:
            loaded = await self._store.load(db, channel_id=channel_id)
            me = loaded.participant_of(actor.user_id)
            if not (me is not None or self._store.has_host_powers(loaded, actor)):
                raise PermissionDenied("Only players in this story can add lore.")
            lore_text = "\n".join([name, *clean_keywords, text])
            self._store.check_content(loaded, actor, lore_text, TextKind.LORE)
            entry = await repo.get_lore(db=db, session_id=loaded.story.id, name=name)
            if entry is None:
                entry = LoreEntry(session_id=loaded.story.id, name=name, created_by=actor.user_id)
                db.add(entry)
            elif entry.created_by != actor.user_id and not self._store.has_host_powers(
                loaded, actor
            ):
                raise PermissionDenied(f"Lore entry {name!r} belongs to someone else.")
            entry.keywords = clean_keywords
            entry.text = text
            await db.flush()
            return LoreView.of(entry)

        return await self._store.transaction(work)

    async def list_lore(self, session_id: int) -> list[LoreView]:
        """Return a story's lore entries."""
        async with self._store.sessions() as db:
            return [LoreView.of(e) for e in await repo.list_lore(db=db, session_id=session_id)]

    async def remove_lore(self, channel_id: int, actor: Actor, name: str) -> None:
        """Delete a lore entry (its author, the host or a moderator)."""
        # The name goes into a query: refuse what no database could even be asked about.
        if (found := find_unstorable(name)) is not None:
            raise TurnRejected(unstorable_reason("The lore entry's name", found))

        async def work(db: AsyncSession) -> None:
            loaded = await self._store.load(db, channel_id=channel_id)
            entry = await repo.get_lore(db=db, session_id=loaded.story.id, name=name.strip())
            if entry is None:
                raise InvalidState(f"There is no lore entry named {name!r}.")
            if entry.created_by != actor.user_id and not self._store.has_host_powers(loaded, actor):
                raise PermissionDenied("Only its author, the host or a moderator can remove it.")
            await db.delete(entry)

        await self._store.transaction(work)
