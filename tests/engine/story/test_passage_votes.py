from __future__ import annotations

from datetime import timedelta

import pytest

from engine.actors import Actor
from engine.errors import InvalidState, NotYourTurn, PermissionDenied
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.deadlines import TurnTimeoutScheduler
from engine.story.views import NarrationOutcome, TimeoutOutcome, VoteClosed
from storage.models import NarratorChoice

from support.stories import ALICE, BOB, CARA, CHANNEL, GUILD, MOD, started

VOTE_SECONDS = 45
STRANGER = Actor(50, "Stranger")


async def _voting(
    service: StoryService, config_service: GuildConfigService, *, spares: int = 3
) -> NarrationOutcome:
    """Play Alice's turn in a vote server and store a passage with SPARES runners-up."""
    await config_service.update(
        GUILD,
        MOD,
        narrator_choice=NarratorChoice.VOTE,
        vote_seconds=VOTE_SECONDS,
        turn_timeout_seconds=600,
    )
    view = await started(service, ALICE, BOB, CARA)
    outcome = await service.turns.submit_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    assert outcome.narration is not None
    stored = await service.ledger.record_narration(
        view.id,
        outcome.narration.job_id,
        "The pick.",
        spares=[f"Runner-up {n}." for n in range(1, spares + 1)],
    )
    assert stored is not None
    return stored


async def _vote(service: StoryService, stored: NarrationOutcome, actor: Actor, choice: int):  # type: ignore[no-untyped-def]
    return await service.votes.cast(
        stored.session.id,
        actor,
        stored.turn.number,
        choice,
        guild_id=GUILD,
        channel_id=CHANNEL,
    )


async def test_a_vote_opens_on_the_pick_and_two_runners_up_and_the_story_waits(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    assert stored.vote is not None
    assert stored.vote.candidates == ("The pick.", "Runner-up 1.", "Runner-up 2.")
    assert stored.vote.closes_at == clock() + timedelta(seconds=45)
    assert stored.session.voting and stored.session.turn_deadline == stored.vote.closes_at
    # Nothing moves the story on while the players choose its passage.
    with pytest.raises(NotYourTurn, match="voting on the narrator's passage"):
        await service.turns.submit_turn(CHANNEL, BOB, "Bob jumps ahead.")
    for refused in (
        service.ledger.retry_narration(CHANNEL, ALICE),
        service.ledger.request_narration(CHANNEL, ALICE),
        service.turns.undo(CHANNEL, ALICE),
        service.turns.skip(CHANNEL, ALICE),
        service.ledger.choose_alternative(
            stored.session.id, ALICE, stored.turn.number, 0, guild_id=GUILD, channel_id=CHANNEL
        ),
    ):
        with pytest.raises(InvalidState, match="voting"):
            await refused
    # No reminder is due for a player whose turn has not begun.
    clock.advance(VOTE_SECONDS - 1)
    assert await service.deadlines.take_due_reminders() == []
    assert await service.deadlines.expire_overdue() == []


async def test_the_candidate_with_most_votes_becomes_the_passage_when_the_vote_closes(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    await _vote(service, stored, ALICE, 0)
    await _vote(service, stored, BOB, 2)
    tally = await _vote(service, stored, CARA, 1)
    assert tally.counts == (1, 1, 1)
    tally = await _vote(service, stored, ALICE, 2)  # a second vote replaces the first
    assert tally.counts == (0, 1, 2) and tally.choice == 2
    assert await service.votes.close(stored.session.id, clock()) is None  # not due yet

    closed: list[VoteClosed] = []
    timeouts: list[TimeoutOutcome] = []

    async def on_timeout(outcome: TimeoutOutcome) -> None:
        timeouts.append(outcome)

    async def on_vote(outcome: VoteClosed) -> None:
        closed.append(outcome)

    # A scheduler made after the vote opened (as after a restart) closes it on time.
    restarted = StoryService.create(session_factory, clock=clock)
    scheduler = TurnTimeoutScheduler(restarted.deadlines, on_timeout, clock=clock)
    scheduler.on_vote_closed = on_vote
    clock.advance(VOTE_SECONDS)
    await scheduler.sweep()
    assert timeouts == []
    [outcome] = closed
    assert outcome.winner == 2 and outcome.counts == (0, 1, 2)
    assert outcome.turn.text == "Runner-up 2."
    assert "The pick." in outcome.turn.alternatives  # kept as a version players can choose
    assert not outcome.session.voting
    assert outcome.session.current_player is not None
    assert outcome.session.current_player.user_id == BOB.user_id
    # Bob's clock starts now, with the server's full turn time.
    assert outcome.session.turn_deadline == clock() + timedelta(seconds=600)
    await scheduler.sweep()
    assert len(closed) == 1  # closed once
    with pytest.raises(InvalidState, match="closed"):
        await _vote(service, stored, BOB, 0)
    turn = await service.turns.submit_turn(CHANNEL, BOB, "Bob follows the light.")
    assert turn.turn.number == stored.turn.number + 1


@pytest.mark.parametrize(
    ("ballots", "winner"),
    [((), 0), (((ALICE, 1), (BOB, 0)), 0), (((ALICE, 2), (BOB, 1)), 1)],
    ids=["no votes", "tie with the pick", "tie of runners-up"],
)
async def test_a_tie_goes_to_the_candidate_the_reranker_ranked_higher(
    session_factory,
    config_service: GuildConfigService,
    clock,
    ballots: tuple[tuple[Actor, int], ...],
    winner: int,
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    for actor, choice in ballots:
        await _vote(service, stored, actor, choice)
    clock.advance(VOTE_SECONDS)
    [outcome] = await service.deadlines.close_due_votes()
    assert outcome.winner == winner
    assert outcome.turn.text == stored.vote.candidates[winner]  # type: ignore[union-attr]


async def test_votes_are_refused_from_elsewhere_from_strangers_and_for_missing_candidates(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service, spares=1)
    assert stored.vote is not None and len(stored.vote.candidates) == 2
    session_id, number = stored.session.id, stored.turn.number
    with pytest.raises(InvalidState, match="not played in this channel"):
        await service.votes.cast(session_id, ALICE, number, 0, guild_id=GUILD, channel_id=999)
    with pytest.raises(PermissionDenied):
        await _vote(service, stored, STRANGER, 0)
    with pytest.raises(InvalidState, match="does not exist"):
        await _vote(service, stored, ALICE, 2)
    with pytest.raises(InvalidState, match="closed"):
        await service.votes.cast(
            session_id, ALICE, number - 1, 0, guild_id=GUILD, channel_id=CHANNEL
        )
    # The host's moderator may vote too.
    assert (await _vote(service, stored, MOD, 1)).counts == (0, 1)


async def test_no_vote_without_runners_up_or_when_the_server_keeps_the_best(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service, spares=0)
    assert stored.vote is None and not stored.session.voting
    await service.turns.submit_turn(CHANNEL, BOB, "Bob climbs the stairs.")
    await config_service.update(GUILD, MOD, narrator_choice=NarratorChoice.BEST)
    view = await service.queries.get(stored.session.id)
    assert view.narrator_job_id is not None
    again = await service.ledger.record_narration(
        view.id, view.narrator_job_id, "Plain.", spares=["Other."]
    )
    assert again is not None and again.vote is None


async def test_a_retry_is_not_put_to_a_vote(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    clock.advance(VOTE_SECONDS)
    await service.deadlines.close_due_votes()
    request = await service.ledger.retry_narration(CHANNEL, ALICE)
    retried = await service.ledger.record_narration(
        stored.session.id, request.job_id, "Fresh.", spares=["Fresh runner-up."]
    )
    assert retried is not None and retried.vote is None and not retried.session.voting


async def test_a_repeated_delivery_during_the_vote_shows_the_same_vote(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    again = await service.ledger.record_narration(
        stored.session.id, stored.turn.job_id or "", "The pick.", spares=["x"]
    )
    assert again is not None and again.duplicate and again.vote == stored.vote


async def test_a_vote_due_while_the_story_was_paused_closes_when_it_resumes(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    service = StoryService.create(session_factory, clock=clock)
    stored = await _voting(service, config_service)
    await _vote(service, stored, BOB, 1)
    await service.lifecycle.pause(CHANNEL, ALICE)
    clock.advance(3600)
    assert await service.deadlines.close_due_votes() == []
    resumed = await service.lifecycle.resume(CHANNEL, ALICE)
    assert resumed.voting
    [outcome] = await service.deadlines.close_due_votes()
    assert outcome.winner == 1
