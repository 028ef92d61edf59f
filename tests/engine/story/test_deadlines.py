from __future__ import annotations

import asyncio
from datetime import timedelta

from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.deadlines import TurnClocks, TurnTimeoutScheduler
from engine.story.views import SessionView, TimeoutOutcome
from storage.models import NarratorCadence

from support.statements import counted
from support.stories import ALICE, BOB, GUILD, MOD, started


async def test_scheduler_skips_overdue_player_and_reports_it(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(GUILD, MOD, turn_timeout_seconds=60)
    seen: list[TimeoutOutcome] = []
    got_one = asyncio.Event()

    async def listener(outcome: TimeoutOutcome) -> None:
        seen.append(outcome)
        got_one.set()

    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    # A scheduler created after the story (as after a restart) picks up the stored deadline.
    scheduler = TurnTimeoutScheduler(
        service.deadlines, listener, clock=clock, max_sleep_seconds=0.05
    )
    scheduler.start()
    try:
        await asyncio.sleep(0.2)
        assert seen == []
        clock.advance(61)
        scheduler.poke()
        await asyncio.wait_for(got_one.wait(), timeout=5)
    finally:
        await scheduler.stop()
    [outcome] = seen
    assert outcome.skipped.user_id == ALICE.user_id
    assert outcome.session.current_player is not None
    assert outcome.session.current_player.user_id == BOB.user_id


async def test_listener_failure_does_not_stop_the_scheduler(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(GUILD, MOD, turn_timeout_seconds=60)
    calls = 0

    async def broken(_outcome: TimeoutOutcome) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("front-end down")

    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    scheduler = TurnTimeoutScheduler(service.deadlines, broken, clock=clock)
    clock.advance(61)
    await scheduler.sweep()
    clock.advance(61)
    await scheduler.sweep()
    assert calls == 2


async def test_each_turn_gets_one_reminder_when_a_quarter_of_its_time_is_left(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(
        GUILD, MOD, turn_timeout_seconds=400, narrator_cadence=NarratorCadence.ON_DEMAND
    )
    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    assert await service.deadlines.take_due_reminders() == []
    clock.advance(299)
    assert await service.deadlines.take_due_reminders() == []
    clock.advance(2)
    [reminded] = await service.deadlines.take_due_reminders()
    assert reminded.current_player is not None
    assert reminded.current_player.user_id == ALICE.user_id
    assert await service.deadlines.take_due_reminders() == [], "one reminder per turn"
    await service.turns.submit_turn(reminded.channel_id, ALICE, "Alice hurries.")
    next_at = await service.deadlines.next_reminder()
    assert next_at == clock() + timedelta(seconds=300)


async def test_scheduler_sends_reminders_and_survives_restarts(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(
        GUILD, MOD, turn_timeout_seconds=400, narrator_cadence=NarratorCadence.ON_DEMAND
    )
    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    clock.advance(350)
    reminded: list[int] = []
    got_one = asyncio.Event()

    async def on_reminder(session: SessionView) -> None:
        assert session.current_player is not None
        reminded.append(session.current_player.user_id)
        got_one.set()

    async def on_timeout(outcome: TimeoutOutcome) -> None:
        raise AssertionError("nobody ran out of time")

    # Started after the reminder fell due, as after a restart: it is sent once, late.
    scheduler = TurnTimeoutScheduler(
        service.deadlines, on_timeout, clock=clock, max_sleep_seconds=0.05, on_reminder=on_reminder
    )
    scheduler.start()
    try:
        await asyncio.wait_for(got_one.wait(), timeout=5)
        await asyncio.sleep(0.2)
    finally:
        await scheduler.stop()
    assert reminded == [ALICE.user_id]


async def test_a_player_whose_time_has_run_out_gets_no_reminder(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    # A sweep that looked for timeouts just before the deadline passed must not then
    # remind the player: the timeout notice is what comes next.
    await config_service.update(
        GUILD, MOD, turn_timeout_seconds=400, narrator_cadence=NarratorCadence.ON_DEMAND
    )
    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    clock.advance(401)
    assert await service.deadlines.take_due_reminders() == []
    [timed_out] = await service.deadlines.expire_overdue()
    assert timed_out.skipped.user_id == ALICE.user_id


async def test_a_burst_of_story_changes_is_answered_by_one_sweep(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    await config_service.update(GUILD, MOD, turn_timeout_seconds=60)
    service = StoryService.create(session_factory, clock=clock)
    await started(service, ALICE, BOB)
    sweeps = 0
    read = service.deadlines.read_clocks

    async def reading(*, reminders: bool = True) -> TurnClocks:
        nonlocal sweeps
        sweeps += 1
        return await read(reminders=reminders)

    service.deadlines.read_clocks = reading  # type: ignore[method-assign]
    scheduler = TurnTimeoutScheduler(service.deadlines, _no_timeouts, clock=clock)
    scheduler.start()
    try:
        await asyncio.sleep(0.2)  # the first sweep, at start
        before = sweeps
        for _ in range(20):  # twenty stories changing at once
            scheduler.poke()
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.3)
        assert sweeps - before in (1, 2), sweeps - before
        # A poke after the burst still gets its own sweep.
        scheduler.poke()
        await asyncio.sleep(0.3)
        assert sweeps - before in (2, 3)
    finally:
        await scheduler.stop()


async def test_a_sweep_of_fifty_running_clocks_is_one_statement(
    session_factory, config_service: GuildConfigService, clock
) -> None:
    # Every story change wakes the scheduler: its sweep must not cost a read per story.
    await config_service.update(
        GUILD, MOD, turn_timeout_seconds=400, narrator_cadence=NarratorCadence.ON_DEMAND
    )
    service = StoryService.create(session_factory, clock=clock)
    for channel in range(1000, 1050):
        await started(service, ALICE, BOB, channel=channel)
    reminded: list[SessionView] = []

    async def on_reminder(session: SessionView) -> None:
        reminded.append(session)

    scheduler = TurnTimeoutScheduler(
        service.deadlines, _no_timeouts, clock=clock, on_reminder=on_reminder
    )
    with counted(session_factory) as statements:
        _, delay = await scheduler._sweep()
    assert len(statements) == 1, "\n".join(statements)
    assert reminded == [] and delay == 30.0  # the reminders are 300 s away: sleep the most

    clock.advance(299)
    with counted(session_factory) as statements:
        _, delay = await scheduler._sweep()
    assert len(statements) == 1 and delay == 1.0

    # Due reminders cost their own transactions, and the clocks are read again at once.
    clock.advance(2)
    _, delay = await scheduler._sweep()
    assert len(reminded) == 50 and delay == 0.0
    with counted(session_factory) as statements:
        _, delay = await scheduler._sweep()
    assert len(statements) == 1 and delay == 30.0  # the deadlines, 99 s away


async def _no_timeouts(outcome: TimeoutOutcome) -> None:
    raise AssertionError("nobody ran out of time")
