"""Players vote among the narrator's best candidates for a passage.

With a server's ``narrator_choice`` set to ``vote``, a new narrator passage that came with
usable runners-up is stored as the reranker's pick and opened to a vote among the pick and
its best runners-up. Until the vote closes the story waits (no turn, retry, undo or skip);
at the deadline the candidate with the most votes becomes the passage (a tie goes to the
candidate the reranker ranked higher) and the next player's clock starts. Everything lives
in the database, so a vote in progress survives a restart and closes on time after it.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from engine.actors import Actor
from engine.errors import InvalidState, PermissionDenied
from engine.story.store import LoadedStory, StoryStore
from engine.story.views import PassageVoteView, TurnView, VoteClosed, VoteTally
from storage import repositories as repo
from storage.models import (
    NarratorChoice,
    ParticipantStatus,
    PassageVote,
    SessionStatus,
    Turn,
    TurnAlternative,
)

log = logging.getLogger(__name__)

# The pick and at most this many runners-up are put to the vote.
MAX_VOTE_RUNNERS_UP = 2
# Letters naming the candidates, in the reranker's order.
CANDIDATE_LETTERS = "ABC"


def _runners_up(turn: Turn) -> list[TurnAlternative]:
    """Return the spare versions put to the vote, best ranked first (they are kept by id)."""
    return [a for a in turn.alternatives if a.spare][:MAX_VOTE_RUNNERS_UP]


def candidate_letter(index: int) -> str:
    """Return the letter players see for candidate INDEX."""
    return CANDIDATE_LETTERS[index]


def open_vote(loaded: LoadedStory, turn: Turn, now: datetime) -> bool:
    """Open a vote on a new narrator TURN when the server asks for one and there is a choice.

    Call it after the turn's spares are attached; the caller sets the turn deadline after
    (the store's deadline is the vote's close while it is open).
    """
    config = loaded.config
    if config.narrator_choice != NarratorChoice.VOTE or not _runners_up(turn):
        return False
    story = loaded.story
    story.vote_turn = turn.number
    story.vote_closes_at = now + timedelta(seconds=config.vote_seconds)
    return True


def vote_view(loaded: LoadedStory, turn: Turn) -> PassageVoteView | None:
    """Return the open vote on TURN, or None when its candidates are not being voted on."""
    story = loaded.story
    if story.vote_turn != turn.number or story.vote_closes_at is None:
        return None
    return PassageVoteView(
        turn_number=turn.number,
        candidates=(turn.text, *(a.text for a in _runners_up(turn))),
        closes_at=story.vote_closes_at,
    )


def _tally(candidates: int, ballots: list[PassageVote]) -> tuple[int, ...]:
    counts = [0] * candidates
    for ballot in ballots:
        if 0 <= ballot.choice < candidates:
            counts[ballot.choice] += 1
    return tuple(counts)


class PassageVotes:
    """Cast and close votes on narrator passages."""

    def __init__(self, store: StoryStore) -> None:
        self._store = store

    async def cast(
        self,
        session_id: int,
        actor: Actor,
        number: int,
        choice: int,
        *,
        guild_id: int,
        channel_id: int,
    ) -> VoteTally:
        """Record ACTOR's vote for candidate CHOICE of passage NUMBER (a new vote replaces).

        The vote must come from the story's own server and channel (a button names the
        story it belongs to, and that name is not to be trusted) and before the vote closes.
        """

        async def work(db: AsyncSession) -> VoteTally:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            if story.guild_id != guild_id or story.channel_id != channel_id:
                raise InvalidState("That story is not played in this channel.")
            now = self._store.clock()
            if (
                story.status != SessionStatus.ACTIVE
                or story.vote_turn != number
                or story.vote_closes_at is None
                or story.vote_closes_at <= now
            ):
                raise InvalidState("That vote has closed.")
            me = loaded.participant_of(actor.user_id)
            in_story = me is not None and me.status == ParticipantStatus.ACTIVE
            if not (in_story or self._store.has_host_powers(loaded, actor)):
                raise PermissionDenied("Only players in this story can vote on its passages.")
            turn = await repo.get_turn(db=db, session_id=story.id, number=number)
            if turn is None:
                raise InvalidState("That vote has closed.")
            candidates = 1 + len(_runners_up(turn))
            if not 0 <= choice < candidates:
                raise InvalidState("That candidate does not exist.")
            ballots = list(
                await repo.passage_ballots(db=db, session_id=story.id, turn_number=number)
            )
            mine = next((b for b in ballots if b.voter_id == actor.user_id), None)
            if mine is None:
                mine = PassageVote(
                    session_id=story.id, turn_number=number, voter_id=actor.user_id, choice=choice
                )
                db.add(mine)
                ballots.append(mine)
            mine.choice = choice
            return VoteTally(
                counts=_tally(candidates, ballots), choice=choice, closes_at=story.vote_closes_at
            )

        return await self._store.transaction(work)

    async def close(self, session_id: int, now: datetime) -> VoteClosed | None:
        """Close a story's vote that fell due: store the winner, start the next turn's clock.

        Returns None when there is nothing to close (closed already, or not due yet).
        """

        async def work(db: AsyncSession) -> VoteClosed | None:
            loaded = await self._store.load(db, session_id=session_id)
            story = loaded.story
            number = story.vote_turn
            closes_at = story.vote_closes_at
            if (
                story.status != SessionStatus.ACTIVE
                or number is None
                or closes_at is None
                or closes_at > now
            ):
                return None
            turn = await repo.get_turn(db=db, session_id=story.id, number=number)
            story.vote_turn = None
            story.vote_closes_at = None
            if turn is None:  # cannot happen while the vote guards undo; heal anyway
                story.turn_deadline = self._store.deadline(loaded)
                await repo.clear_passage_votes(db=db, session_id=story.id)
                return None
            runners_up = _runners_up(turn)
            ballots = list(
                await repo.passage_ballots(db=db, session_id=story.id, turn_number=number)
            )
            counts = _tally(1 + len(runners_up), ballots)
            # The most votes wins; among equals, the one the reranker ranked higher.
            winner = max(range(len(counts)), key=lambda i: (counts[i], -i))
            if winner > 0:
                chosen = runners_up[winner - 1]
                chosen.text, turn.text = turn.text, chosen.text
                chosen.job_id, turn.job_id = turn.job_id, chosen.job_id
                turn.edited_at = now
            await repo.clear_passage_votes(db=db, session_id=story.id)
            if loaded.current is not None:
                story.turn_deadline = self._store.deadline(loaded)
            log.info("session %s: vote on turn %s closed %s", story.id, number, counts)
            await db.flush()
            await db.refresh(turn)
            return VoteClosed(
                session=await self._store.refresh(db, story),
                turn=TurnView.of(turn),
                counts=counts,
                winner=winner,
            )

        return await self._store.transaction(work)
