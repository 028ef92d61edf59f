"""Gather what the narrator needs from the database into a self-contained StoryContext."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from engine.errors import SessionNotFound
from engine.narrator.lore_triggers import triggered_lore
from engine.narrator.memory import turns_to_summarise
from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext
from engine.rules.genres import custom_preset, get_preset
from engine.story.queries import StoryRules
from engine.story.rotation import active_seats
from engine.story.store import StoryStore
from engine.story.views import SessionView
from storage import repositories as repo
from storage.models import StorySession, Turn, TurnKind

log = logging.getLogger(__name__)

# The engine has no tokenizer (the model lives in the worker), so memory decisions use
# a conservative estimate; the worker still fits the prompt exactly with the real one.
CHARS_PER_TOKEN = 4
RECENT_TURNS_BUDGET_TOKENS = 1200
KEEP_RECENT_TURNS = 6
MAX_RECENT_TURNS = 40


def estimate_tokens(text: str) -> int:
    """Estimate a text's token count without a tokenizer."""
    return max(1, len(text) // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class SummaryTask:
    """Old turns that should be folded into the rolling summary."""

    session_id: int
    previous_summary: str
    turns: tuple[ContextTurn, ...]
    covers_through_turn: int


def _prompt_turn(row: Turn) -> ContextTurn:
    return ContextTurn(
        number=row.number,
        author=row.author_name,
        is_narrator=row.kind == TurnKind.NARRATOR,
        text=row.text,
    )


class StoryContextBuilder:
    """Read a story and build the narrator's context or the next summary task."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def _story(self, db: AsyncSession, session_id: int) -> StorySession:
        story = await repo.get_session(db=db, session_id=session_id)
        if story is None:
            raise SessionNotFound(f"There is no story with id {session_id}.")
        return story

    async def narrator_job(
        self, session_id: int, *, retry_of_turn: int | None = None
    ) -> tuple[StoryRules, StoryContext]:
        """Return a story's rules and its next narrator passage's context, in one session."""
        async with self._sessions() as db:
            story = await self._story(db, session_id)
            config, rating = await StoryStore.rules_of(db, story)
            rules = StoryRules(session=SessionView.of(story), config=config, rating=rating)
            summary = await repo.latest_summary(db=db, session_id=session_id)
            covered = summary.covers_through_turn if summary else 0
            turns = await repo.list_turns(
                db=db, session_id=session_id, after=covered, limit=MAX_RECENT_TURNS
            )
            if retry_of_turn is not None:
                turns = [t for t in turns if t.number < retry_of_turn]
            lore_rows = await repo.list_lore(db=db, session_id=session_id)
        lore = [LoreEntryView(e.name, tuple(e.keywords), e.text) for e in lore_rows]
        recent = tuple(_prompt_turn(t) for t in turns)
        seats = active_seats(story.participants)
        current = next((p for p in seats if p.id == story.current_participant_id), None)
        preset = (
            custom_preset(config.custom_genre_instructions or "Tell the story vividly.")
            if story.genre == "custom"
            else get_preset(story.genre)
        )
        return rules, StoryContext(
            title=story.title,
            genre_key=preset.key,
            genre_instructions=preset.narrator_instructions,
            premise=story.premise,
            player_names=tuple(p.display_name for p in seats),
            summary=summary.text if summary else "",
            lore=tuple(triggered_lore(lore, [t.text for t in recent])),
            authors_note=story.authors_note,
            recent_turns=recent,
            next_player=current.display_name if current else None,
        )

    async def summary_task(self, session_id: int) -> SummaryTask | None:
        """Return the turns to fold into the summary, or None while they still fit."""
        async with self._sessions() as db:
            summary = await repo.latest_summary(db=db, session_id=session_id)
            covered = summary.covers_through_turn if summary else 0
            turns = await repo.list_turns(db=db, session_id=session_id, after=covered)
        count = turns_to_summarise(
            [estimate_tokens(t.text) for t in turns],
            RECENT_TURNS_BUDGET_TOKENS,
            KEEP_RECENT_TURNS,
        )
        if count == 0:
            return None
        folded = tuple(_prompt_turn(t) for t in turns[:count])
        return SummaryTask(
            session_id=session_id,
            previous_summary=summary.text if summary else "",
            turns=folded,
            covers_through_turn=folded[-1].number,
        )
