"""Stories to export: played through the real session service, or built in memory."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

import pytest

from engine.actors import Actor
from engine.export import ExportService
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import (
    ParticipantView,
    SessionView,
    StoryTranscript,
    TableTalkView,
    TurnView,
)
from storage.models import ParticipantStatus, SessionStatus, TurnKind

from support.stories import ALICE, BOB, CARA, CHANNEL, started

# Text players could send to break out of their passage in one format or another.
HOSTILE_TEXTS = (
    "<script>document.title='pwned'</script>",
    "Entities &amp;lt;b&amp;gt; and &lt;i&gt; stay as typed",
    "# heading\n## another heading",
    "[link](http://evil.example/steal)",
    "```\nfenced code\n```",
    "<img src=x onerror=\"document.title='pwned'\">",
    "*bold* and _em_ and **strong** and ~~gone~~",
    "1. first\n- bullet\n+ plus\n> quote\n---\n===",
    "| a | b |\n|---|---|\n| 1 | 2 |",
    "<a href='http://evil.example/'>click</a> ![img](http://evil.example/x.png)",
    "<style>body{display:none}</style><iframe src=http://evil.example/></iframe>",
    "ends with a backslash \\",
    "control \x0b\x01 characters and \"quotes\" and 'apostrophes'",
)

Play = Callable[..., Awaitable[SessionView]]


@pytest.fixture
def exports(
    service: StoryService, config_service: GuildConfigService, clock: Callable[[], datetime]
) -> ExportService:
    return ExportService(service.queries, config_service, clock=clock)


@pytest.fixture
def play(service: StoryService, clock) -> Play:  # type: ignore[no-untyped-def]
    """Return a function that plays player texts in turn, each answered by the narrator."""

    async def play(
        texts: Sequence[str],
        *,
        players: Sequence[Actor] = (ALICE, BOB),
        channel: int = CHANNEL,
        end: bool = False,
    ) -> SessionView:
        view = await started(service, *players, channel=channel)
        for index, text in enumerate(texts):
            writer = players[index % len(players)]
            outcome = await service.turns.submit_turn(channel, writer, text)
            clock.advance(60)
            assert outcome.narration is not None
            await service.ledger.record_narration(
                view.id, outcome.narration.job_id, f"The narrator answers passage {index + 1}."
            )
            clock.advance(60)
        if end:
            await service.lifecycle.end(channel, players[0])
        return await service.queries.get(view.id)

    return play


@pytest.fixture
def rich_story(service: StoryService, clock) -> Callable[..., Awaitable[SessionView]]:  # type: ignore[no-untyped-def]
    """Return a function that plays a story using every feature export has to show."""

    async def rich_story(*, end: bool = True, channel: int = CHANNEL) -> SessionView:
        view = await started(service, ALICE, BOB, CARA, channel=channel)
        await service.lifecycle.leave(channel, CARA)  # a player who left may still export
        await service.lore.add_lore(
            channel, ALICE, "The Door", ["door", "sea door"], "Opens at dusk."
        )
        await service.turns.record_table_talk(channel, ALICE, "ready when you are")  # after turn 0
        first = await service.turns.submit_turn(channel, ALICE, "I light the lamp.\nIt flickers.")
        assert first.narration is not None
        await service.ledger.record_narration(view.id, first.narration.job_id, "Version one.")
        retry = await service.ledger.retry_narration(channel, BOB)
        await service.ledger.record_narration(view.id, retry.job_id, "Version two.")
        second = await service.turns.submit_turn(channel, BOB, "I open the door.")
        await service.turns.edit_turn(channel, BOB, "I open the sea door.\n\nWater pours in.")
        await service.turns.record_table_talk(channel, BOB, "brb, tea")  # after turn 3
        assert second.narration is not None
        await service.ledger.record_narration(view.id, second.narration.job_id, "The tide answers.")
        await service.ledger.record_summary(
            view.id, "sum-1", "Alice lit the lamp; Bob opened it.", 4
        )
        await service.lifecycle.set_authors_note(channel, ALICE, "Keep it eerie.")
        if end:
            clock.advance(3600)
            await service.lifecycle.end(channel, ALICE)
        return await service.queries.get(view.id)

    return rich_story


T0 = datetime(2026, 3, 1, 18, 30, tzinfo=UTC)


def make_transcript(
    texts: Sequence[str],
    *,
    title: str = "The Long Night",
    ended: bool = True,
    table_talk: Sequence[tuple[int, str]] = (),
    alternatives: dict[int, tuple[str, ...]] | None = None,
) -> StoryTranscript:
    """Build a transcript in memory: player texts in turn, each followed by the narrator."""
    alice = ParticipantView(1, ALICE.user_id, ALICE.display_name, 1, ParticipantStatus.ACTIVE, 0)
    bob = ParticipantView(2, BOB.user_id, BOB.display_name, 2, ParticipantStatus.ACTIVE, 0)
    turns: list[TurnView] = []
    for index, text in enumerate(texts):
        author = (alice, bob)[index % 2]
        number = len(turns) + 1
        turns.append(
            TurnView(
                number=number,
                kind=TurnKind.PLAYER,
                author_id=author.user_id,
                author_name=author.display_name,
                text=text,
                discord_message_id=None,
                job_id=None,
                alternatives=(),
                created_at=T0 + timedelta(minutes=number),
                edited_at=None,
            )
        )
        turns.append(
            TurnView(
                number=number + 1,
                kind=TurnKind.NARRATOR,
                author_id=None,
                author_name="Narrator",
                text=f"The narrator answers passage {index + 1}.",
                discord_message_id=None,
                job_id=f"job-{number + 1}",
                alternatives=(alternatives or {}).get(number + 1, ()),
                created_at=T0 + timedelta(minutes=number + 1),
                edited_at=None,
            )
        )
    session = SessionView(
        id=7,
        guild_id=1,
        channel_id=CHANNEL,
        title=title,
        genre="fantasy",
        premise="A lighthouse keeper finds a door in the sea.",
        authors_note="",
        age_restricted=False,
        status=SessionStatus.ENDED if ended else SessionStatus.ACTIVE,
        host_id=ALICE.user_id,
        participants=(alice, bob),
        current_player=None if ended else alice,
        turn_deadline=None,
        turn_count=len(turns),
        narrator_job_id=None,
        narrator_retry_turn=None,
        created_at=T0,
        ended_at=T0 + timedelta(days=2) if ended else None,
    )
    talk = tuple(
        TableTalkView(BOB.user_id, "Bob", text, after, T0 + timedelta(minutes=after, seconds=30))
        for after, text in table_talk
    )
    return StoryTranscript(
        session=session, turns=tuple(turns), lore=(), summaries=(), table_talk=talk
    )


@pytest.fixture
def transcript_of() -> Callable[..., StoryTranscript]:
    """Return the in-memory transcript builder."""
    return make_transcript


@pytest.fixture
def hostile_texts() -> tuple[str, ...]:
    """Return texts that try to escape their passage in every format."""
    return HOSTILE_TEXTS
