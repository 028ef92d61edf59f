"""Players vote among the narrator's best candidates (`/storyconfig narrator choice:vote`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from engine.queue.interfaces import GeneratedText
from engine.rules import NarratorChoice
from engine.story.views import SessionView

from discord_double import StoredMessage

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

PICK = "The lamp flares, and the sea door swings inward on a stair of wet stone."
RUNNERS_UP = (
    "Far below, a bell answers the knock, slow and green with the weight of water.",
    "The keeper's breath fogs the glass; beyond it the door waits, half open.",
    "Gulls lift from the gallery rail as the tide pulls back from the threshold.",
)
VOTE_SECONDS = 45


class CandidatesNarrator:
    """A narrator whose best-of-n answer is always the same pick and runners-up."""

    def __call__(
        self, jobs: Sequence[object], on_progress: Callable[[str, str], None]
    ) -> list[tuple[str, GeneratedText]]:
        outcomes = []
        for job in jobs:
            job_id = job.job_id  # type: ignore[attr-defined]
            on_progress(job_id, PICK[:20])
            outcomes.append((job_id, GeneratedText(PICK, RUNNERS_UP)))
        return outcomes


async def vote_message(table: StoryTable, view_id: int, *, after: StoredMessage) -> StoredMessage:
    """Wait for the bot's message that puts passage 2's candidates to the vote."""
    return await table.double.wait_for_message(
        "story",
        lambda m: f"tw:vote:{view_id}:2:0" in m.custom_ids(),
        after=after,
        timeout=30,
    )


async def first_vote(table: StoryTable, *players: str) -> tuple[SessionView, StoredMessage]:
    """Start a story in a voting server; the first player's turn brings the first ballot."""
    await table.configure(narrator_choice=NarratorChoice.VOTE, vote_seconds=VOTE_SECONDS)
    view = await table.start_story(*players)
    turn = await table.say(players[0], "Alice knocks three times on the sea door.")
    return view, await vote_message(table, view.id, after=turn)


async def vote(table: StoryTable, user: str, message: StoredMessage, custom_id: str) -> str:
    """Click a vote button as USER; return the private answer."""
    click = await table.double.click(user, message, custom_id)
    await table.double.wait_for_response(click)
    [answer] = table.double.interaction_responses(click)
    assert answer.ephemeral
    return answer.content


async def close_the_vote(table: StoryTable) -> None:
    """Let the vote's time run out and have the bot look at its clocks."""
    table.clock.advance(VOTE_SECONDS + 1)
    table.running_bot.runtime.timers.poke()


async def test_players_vote_and_the_winning_candidate_becomes_the_passage(
    table: StoryTable,
) -> None:
    double = table.double
    table.narrator = CandidatesNarrator  # type: ignore[method-assign]
    async with table.running():
        view, ballot = await first_vote(table, "alice", "bob", "cara")
        # The pick and its two best runners-up, one button and one embed each.
        assert ballot.custom_ids() == [f"tw:vote:{view.id}:2:{n}" for n in range(3)]
        assert [e["title"] for e in ballot.embeds] == ["A", "B", "C"]
        assert [e["description"] for e in ballot.embeds] == [PICK, *RUNNERS_UP[:2]]
        assert "Vote for the one the story keeps" in ballot.content
        assert ballot.pinged_user_ids == []

        # Nobody's turn yet: Bob's message waits, and the story is not told it.
        early = await table.say("bob", "Bob jumps ahead of the vote.")
        await double.wait_for(lambda: table.reactions_on(early), what="the out-of-turn mark")
        session = await table.session()
        assert session.voting and session.turn_count == 2

        answer = await vote(table, "bob", ballot, f"tw:vote:{view.id}:2:1")
        assert answer.startswith("You voted for **B**. So far: A 0 · B 1 · C 0.")
        answer = await vote(table, "cara", ballot, f"tw:vote:{view.id}:2:2")
        answer = await vote(table, "alice", ballot, f"tw:vote:{view.id}:2:1")
        assert "A 0 · B 2 · C 1" in answer
        # A moderator has the host's powers: their vote counts too.
        answer = await vote(table, "moderator", ballot, f"tw:vote:{view.id}:2:0")
        assert "A 1 · B 2 · C 1" in answer

        await close_the_vote(table)
        passage = await table.passage(after=ballot, number=2)
        assert passage.content == RUNNERS_UP[0]
        await double.wait_for(lambda: ballot.deleted, what="the vote to give way to the passage")
        ping = await table.ping("bob", after=passage)
        assert ping.content.startswith("🗳️ The players chose passage B (A 1 · B 2 · C 1).")
        assert ping.pinged_user_ids == [table.user("bob").id]
        [_, narrator] = await table.turns()
        assert narrator.text == RUNNERS_UP[0] and PICK in narrator.alternatives
        assert narrator.discord_message_id == passage.id

        # A vote closed is closed; the story goes on with Bob.
        late = await vote(table, "cara", ballot, f"tw:vote:{view.id}:2:0")
        assert late == "That vote has closed."
        turn = await table.say("bob", "Bob follows the bell down the stair.")
        await double.wait_for_message(
            "story", lambda m: f"tw:vote:{view.id}:4:0" in m.custom_ids(), after=turn, timeout=30
        )
    table.audit_mentions()


async def test_a_vote_in_progress_survives_a_restart_and_closes_on_time(
    table: StoryTable,
) -> None:
    double = table.double
    table.narrator = CandidatesNarrator  # type: ignore[method-assign]
    async with table.running():
        view, ballot = await first_vote(table, "alice", "bob")
        await vote(table, "alice", ballot, f"tw:vote:{view.id}:2:2")

    # A new process: the buttons still count votes, and the vote closes when it is due.
    async with table.running():
        answer = await vote(table, "bob", ballot, f"tw:vote:{view.id}:2:2")
        assert "A 0 · B 0 · C 2" in answer
        await close_the_vote(table)
        passage = await table.passage(after=ballot, number=2)
        assert passage.content == RUNNERS_UP[1]
        ping = await table.ping("bob", after=passage)
        assert "chose passage C" in ping.content
        await double.wait_for(lambda: ballot.deleted, what="the vote to give way to the passage")
