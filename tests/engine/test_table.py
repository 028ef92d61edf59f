"""StoryTable: a player's action is stored, then the narrator's job is enqueued, in one call."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest

from engine.errors import InvalidState, NotYourTurn, PermissionDenied, StoryError
from engine.narrator.coordinator import NarratorBusy, NarratorCoordinator
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import NarrationRequest
from engine.table import StoredTurn, StoryTable
from storage.models import NarratorCadence, TurnKind

from support.stories import ALICE, BOB, CARA, CHANNEL, GUILD, MOD, started

BUSY = "The narrator is busy: 9 stories are waiting."


class FakeNarrator:
    """Records what reaches the narrator, in order with the front-end's callbacks."""

    def __init__(self, events: list[str] | None = None, *, position: int = 1) -> None:
        self.requests: list[NarrationRequest] = []
        self.events = events if events is not None else []
        self.position = position

    async def request(self, request: NarrationRequest) -> int:
        self.requests.append(request)
        self.events.append("enqueue")
        return self.position


class BusyNarrator(FakeNarrator):
    """A narrator whose queue is full."""

    async def request(self, request: NarrationRequest) -> int:
        self.requests.append(request)
        self.events.append("refused")
        raise NarratorBusy(BUSY)


class ShowFailed(Exception):
    """A front-end could not show a stored action (say, Discord refused the message)."""


def table_over(service: StoryService, narrator: FakeNarrator) -> StoryTable:
    return StoryTable(service, cast(NarratorCoordinator, narrator))


async def cadence(config_service: GuildConfigService, value: NarratorCadence) -> None:
    await config_service.update(GUILD, MOD, narrator_cadence=value)


async def narrated(service: StoryService, table: StoryTable, narrator: FakeNarrator) -> int:
    """Write Alice's turn, deliver the narrator's passage and return its turn number."""
    await table.write_turn(CHANNEL, ALICE, "Alice opens the door in the sea.")
    request = narrator.requests[-1]
    outcome = await service.ledger.record_narration(
        request.session_id, request.job_id, "The door swings open onto a drowned hall."
    )
    assert outcome is not None and outcome.turn.kind == TurnKind.NARRATOR
    return outcome.turn.number


# Writing a turn --------------------------------------------------------------------------------
async def test_turn_with_narrator_due_is_stored_and_its_job_enqueued_once(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    narrator = FakeNarrator(position=3)
    table = table_over(service, narrator)

    written = await table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.", message_id=555)

    turns = await service.queries.turns(view.id)
    assert [(t.number, t.author_id, t.text) for t in turns] == [
        (1, ALICE.user_id, "Alice lights the lamp.")
    ]
    assert written.turn.number == 1 and written.turn.discord_message_id == 555
    stored = await service.queries.get(view.id)
    assert stored.narrator_job_id is not None
    assert len(narrator.requests) == 1
    assert narrator.requests[0].job_id == stored.narrator_job_id
    assert narrator.requests[0].session_id == view.id
    assert narrator.requests[0].retry_of_turn is None
    assert written.narrator is not None
    assert written.narrator.queued is True
    assert written.narrator.position == 3
    assert written.narrator.refusal is None
    assert written.narrator.job_id == stored.narrator_job_id
    assert written.narrator.session_id == view.id


async def test_turn_on_demand_enqueues_nothing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    shown: list[StoredTurn] = []

    async def show(stored: StoredTurn) -> None:
        shown.append(stored)

    written = await table_over(service, narrator).write_turn(
        CHANNEL, ALICE, "Alice lights the lamp.", show=show
    )

    assert written.narrator is None
    assert narrator.requests == []
    assert [s.narrator_due for s in shown] == [False]
    stored = await service.queries.get(view.id)
    assert stored.narrator_job_id is None
    assert stored.current_player is not None and stored.current_player.user_id == BOB.user_id


async def test_show_runs_after_the_turn_is_stored_and_before_the_narrator_is_asked(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events)

    async def show(stored: StoredTurn) -> None:
        turns = await service.queries.turns(view.id)
        assert [t.text for t in turns] == ["Alice lights the lamp."]
        assert stored.turn == turns[0]
        assert stored.narrator_due is True
        assert stored.session.narrator_job_id is not None
        events.append("show")

    await table_over(service, narrator).write_turn(
        CHANNEL, ALICE, "Alice lights the lamp.", show=show
    )

    assert events == ["show", "enqueue"]


async def test_failing_show_still_enqueues_the_job_then_raises(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events)

    async def show(stored: StoredTurn) -> None:
        events.append("show")
        raise ShowFailed("Discord refused the message")

    with pytest.raises(ShowFailed, match="Discord refused"):
        await table_over(service, narrator).write_turn(
            CHANNEL, ALICE, "Alice lights the lamp.", show=show
        )

    assert events == ["show", "enqueue"]
    stored = await service.queries.get(view.id)
    assert [t.text for t in await service.queries.turns(view.id)] == ["Alice lights the lamp."]
    # The story waits for a job, and that very job was handed to the narrator.
    assert stored.narrator_job_id is not None
    assert [r.job_id for r in narrator.requests] == [stored.narrator_job_id]


async def test_cancelled_show_still_enqueues_the_job_then_cancels(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events)

    async def show(stored: StoredTurn) -> None:
        events.append("show")
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await table_over(service, narrator).write_turn(
            CHANNEL, ALICE, "Alice lights the lamp.", show=show
        )

    assert events == ["show", "enqueue"]
    stored = await service.queries.get(view.id)
    assert [r.job_id for r in narrator.requests] == [stored.narrator_job_id]


async def test_busy_narrator_is_reported_as_a_refusal_not_raised(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = BusyNarrator(events)

    async def show(stored: StoredTurn) -> None:
        events.append("show")

    written = await table_over(service, narrator).write_turn(
        CHANNEL, ALICE, "Alice lights the lamp.", show=show
    )

    assert events == ["show", "refused"]
    assert written.turn.number == 1
    assert written.narrator is not None
    assert written.narrator.queued is False
    assert written.narrator.refusal == BUSY
    assert written.narrator.position is None
    assert written.narrator.job_id == narrator.requests[0].job_id
    assert written.narrator.session_id == view.id


async def test_refused_turn_calls_neither_show_nor_the_narrator(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    shown: list[StoredTurn] = []

    async def show(stored: StoredTurn) -> None:
        shown.append(stored)

    with pytest.raises(NotYourTurn, match="Alice's turn"):
        await table_over(service, narrator).write_turn(
            CHANNEL, BOB, "Bob jumps the queue.", show=show
        )

    assert shown == []
    assert narrator.requests == []
    assert await service.queries.turns(view.id) == []
    assert (await service.queries.get(view.id)).narrator_job_id is None


async def test_turn_while_the_narrator_writes_is_refused_without_a_second_job(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    table = table_over(service, narrator)
    await table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    shown: list[StoredTurn] = []

    async def show(stored: StoredTurn) -> None:
        shown.append(stored)

    with pytest.raises(NotYourTurn, match="narrator is still writing"):
        await table.write_turn(CHANNEL, BOB, "Bob speaks over the narrator.", show=show)

    assert shown == []
    assert len(narrator.requests) == 1


# Calling and retrying the narrator -------------------------------------------------------------
async def test_call_narrator_announces_before_enqueueing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events, position=2)

    async def announce() -> None:
        assert (await service.queries.get(view.id)).narrator_job_id is not None
        events.append("announce")

    call = await table_over(service, narrator).call_narrator(CHANNEL, BOB, announce=announce)

    assert events == ["announce", "enqueue"]
    stored = await service.queries.get(view.id)
    assert [r.job_id for r in narrator.requests] == [stored.narrator_job_id]
    assert narrator.requests[0].retry_of_turn is None
    assert call.queued is True
    assert call.position == 2
    assert call.job_id == stored.narrator_job_id


async def test_call_narrator_with_failing_announce_still_enqueues_then_raises(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events)

    async def announce() -> None:
        events.append("announce")
        raise ShowFailed("Discord refused the message")

    with pytest.raises(ShowFailed):
        await table_over(service, narrator).call_narrator(CHANNEL, ALICE, announce=announce)

    assert events == ["announce", "enqueue"]
    stored = await service.queries.get(view.id)
    assert [r.job_id for r in narrator.requests] == [stored.narrator_job_id]


async def test_call_narrator_while_it_writes_is_refused_and_enqueues_nothing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    table = table_over(service, narrator)
    await table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    announced: list[str] = []

    async def announce() -> None:
        announced.append("announce")

    with pytest.raises(InvalidState, match="already writing"):
        await table.call_narrator(CHANNEL, BOB, announce=announce)

    assert announced == []
    assert len(narrator.requests) == 1  # only the turn's own job


async def test_call_narrator_by_an_outsider_is_refused_and_enqueues_nothing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    announced: list[str] = []

    async def announce() -> None:
        announced.append("announce")

    with pytest.raises(PermissionDenied):
        await table_over(service, narrator).call_narrator(CHANNEL, CARA, announce=announce)

    assert announced == []
    assert narrator.requests == []
    assert (await service.queries.get(view.id)).narrator_job_id is None


async def test_call_narrator_on_a_busy_queue_returns_the_refusal(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = BusyNarrator(events)

    async def announce() -> None:
        events.append("announce")

    call = await table_over(service, narrator).call_narrator(CHANNEL, ALICE, announce=announce)

    assert events == ["announce", "refused"]
    assert call.queued is False
    assert call.refusal == BUSY
    assert call.position is None


async def test_retry_narrator_announces_before_enqueueing_a_retry_of_the_latest_passage(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    view = await started(service, ALICE, BOB)
    events: list[str] = []
    narrator = FakeNarrator(events)
    table = table_over(service, narrator)
    passage = await narrated(service, table, narrator)
    events.clear()

    async def announce() -> None:
        events.append("announce")

    call = await table.retry_narrator(CHANNEL, BOB, announce=announce)

    assert events == ["announce", "enqueue"]
    stored = await service.queries.get(view.id)
    retry = narrator.requests[-1]
    assert len(narrator.requests) == 2
    assert retry.retry_of_turn == passage
    assert retry.job_id == stored.narrator_job_id == call.job_id
    assert stored.narrator_retry_turn == passage
    assert call.queued is True


async def test_retry_narrator_without_a_narrator_passage_is_refused_and_enqueues_nothing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.ON_DEMAND)
    view = await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    table = table_over(service, narrator)
    await table.write_turn(CHANNEL, ALICE, "Alice lights the lamp.")
    announced: list[str] = []

    async def announce() -> None:
        announced.append("announce")

    with pytest.raises(InvalidState, match="latest passage"):
        await table.retry_narrator(CHANNEL, BOB, announce=announce)

    assert announced == []
    assert narrator.requests == []
    assert (await service.queries.get(view.id)).narrator_job_id is None


async def test_retry_narrator_while_it_writes_is_refused_and_enqueues_nothing(
    service: StoryService, config_service: GuildConfigService
) -> None:
    await cadence(config_service, NarratorCadence.EVERY_TURN)
    await started(service, ALICE, BOB)
    narrator = FakeNarrator()
    table = table_over(service, narrator)
    await narrated(service, table, narrator)
    await table.retry_narrator(CHANNEL, ALICE)
    announced: list[str] = []

    async def announce() -> None:
        announced.append("announce")

    with pytest.raises(StoryError, match="already writing"):
        await table.retry_narrator(CHANNEL, BOB, announce=announce)

    assert announced == []
    assert len(narrator.requests) == 2  # the turn's job and the first retry
