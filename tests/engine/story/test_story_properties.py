"""Random sequences of story actions keep the rotation's invariants (hypothesis stateful)."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from engine.actors import Actor
from engine.errors import StoryError
from engine.rules.guild_config import GuildConfigService
from engine.story import StoryService
from engine.story.views import SessionView
from storage.database import create_engine, create_session_factory
from storage.models import NarratorCadence, ParticipantStatus, SessionStatus

from conftest import FakeClock, _truncate_all
from support.stories import GUILD, MOD

PLAYERS = [Actor(i, name) for i, name in enumerate(["Ana", "Ben", "Cy", "Dee"], start=1)]
CHANNEL = 4242
players = st.sampled_from(PLAYERS)


@dataclass(frozen=True)
class Snapshot:
    """The observable state a refused action must leave untouched."""

    status: SessionStatus
    current: int | None
    turn_count: int
    narrator_pending: bool
    seats: tuple[tuple[int, int, str], ...]
    turns: tuple[tuple[int, str], ...]


class StoryMachine(RuleBasedStateMachine):
    """Drives one story through random actions against a real database."""

    database_url: str = ""
    reset: Any = None

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.reset()
        self.engine = create_engine(self.database_url)
        self.clock = FakeClock()
        self.service = StoryService.create(create_session_factory(self.engine), clock=self.clock)
        self.config = GuildConfigService(create_session_factory(self.engine))
        self.session_id: int | None = None
        self.last_submit: tuple[Snapshot, Snapshot] | None = None

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.engine.dispose())
        self.loop.close()

    # State helpers ----------------------------------------------------------------------------
    def view(self) -> SessionView:
        assert self.session_id is not None
        return self.run(self.service.queries.get(self.session_id))  # type: ignore[no-any-return]

    def snapshot(self) -> Snapshot:
        view = self.view()
        turns = self.run(self.service.queries.turns(view.id))
        return Snapshot(
            status=view.status,
            current=view.current_player.id if view.current_player else None,
            turn_count=view.turn_count,
            narrator_pending=view.narrator_pending,
            seats=tuple((p.id, p.join_order, p.status.value) for p in view.participants),
            turns=tuple((t.number, t.text) for t in turns),
        )

    def attempt(self, coro: Any) -> bool:
        """Run an action; a refusal must leave the story exactly as it was."""
        before = self.snapshot()
        try:
            self.run(coro)
        except StoryError:
            assert self.snapshot() == before, "a refused action changed the story"
            return False
        return True

    # Rules ------------------------------------------------------------------------------------
    @initialize(cadence=st.sampled_from(list(NarratorCadence)), extra=st.integers(1, 3))
    def start_story(self, cadence: NarratorCadence, extra: int) -> None:
        self.run(self.config.update(GUILD, MOD, narrator_cadence=cadence, turn_timeout_seconds=60))
        view = self.run(
            self.service.lifecycle.start(
                guild_id=GUILD, channel_id=CHANNEL, actor=PLAYERS[0], title="T", genre="fantasy"
            )
        )
        self.session_id = view.id
        for actor in PLAYERS[1 : 1 + extra]:
            self.run(self.service.lifecycle.join(CHANNEL, actor))
        self.run(self.service.lifecycle.begin(CHANNEL, PLAYERS[0]))

    @rule(actor=players)
    def join(self, actor: Actor) -> None:
        self.last_submit = None
        self.attempt(self.service.lifecycle.join(CHANNEL, actor))

    @rule(actor=players)
    def leave(self, actor: Actor) -> None:
        self.last_submit = None
        self.attempt(self.service.lifecycle.leave(CHANNEL, actor))

    @rule(data=st.data(), text=st.sampled_from(["A move.", "", "x" * 2000, "Onward!"]))
    def submit(self, data: st.DataObject, text: str) -> None:
        view = self.view()
        current = view.current_player
        pick_current = current is not None and data.draw(st.booleans())
        actor = (
            next(a for a in PLAYERS if a.user_id == current.user_id)  # type: ignore[union-attr]
            if pick_current
            else data.draw(players)
        )
        before = self.snapshot()
        if self.attempt(self.service.turns.submit_turn(CHANNEL, actor, text)):
            after = self.view()
            writer_alone = len(view.rotation) == 1
            if after.current_player is not None and not writer_alone:
                assert after.current_player.user_id != actor.user_id, "wrote twice in a row"
            self.last_submit = (before, self.snapshot())
        else:
            self.last_submit = None

    @rule()
    def undo_last_submit(self) -> None:
        if self.last_submit is None:
            return
        before, _after = self.last_submit
        self.last_submit = None
        host = MOD  # moderators may always undo
        assert self.attempt(self.service.turns.undo(CHANNEL, host))
        restored = self.snapshot()
        assert restored.turn_count == before.turn_count
        assert restored.turns == before.turns
        assert restored.current == before.current
        assert restored.narrator_pending == before.narrator_pending

    @rule(actor=players)
    def undo_anything(self, actor: Actor) -> None:
        self.last_submit = None
        self.attempt(self.service.turns.undo(CHANNEL, actor))

    @rule(actor=st.one_of(players, st.just(MOD)))
    def skip(self, actor: Actor) -> None:
        self.last_submit = None
        self.attempt(self.service.turns.skip(CHANNEL, actor))

    @rule()
    def time_passes(self) -> None:
        self.last_submit = None
        self.clock.advance(61)
        self.run(self.service.deadlines.expire_overdue())

    @rule(ok=st.booleans())
    def narrator_answers(self, ok: bool) -> None:
        self.last_submit = None
        view = self.view()
        if not view.narrator_pending:
            return
        job = self._pending_job()
        if ok:
            self.run(self.service.ledger.record_narration(view.id, job, "The narrator speaks."))
        else:
            self.run(self.service.ledger.narration_failed(view.id, job))
        assert not self.view().narrator_pending

    @rule(actor=players)
    def ask_narrator(self, actor: Actor) -> None:
        self.last_submit = None
        self.attempt(self.service.ledger.request_narration(CHANNEL, actor))

    @rule(actor=st.one_of(players, st.just(MOD)))
    def pause_or_resume(self, actor: Actor) -> None:
        self.last_submit = None
        view = self.view()
        lifecycle = self.service.lifecycle
        action = lifecycle.resume if view.status == SessionStatus.PAUSED else lifecycle.pause
        self.attempt(action(CHANNEL, actor))

    def _pending_job(self) -> str:
        from storage import repositories as repo

        async def read() -> str:
            async with create_session_factory(self.engine)() as db:
                story = await repo.get_session(db=db, session_id=self.session_id or 0)
                assert story is not None and story.narrator_job_id is not None
                return story.narrator_job_id

        return self.run(read())  # type: ignore[no-any-return]

    # Invariants -------------------------------------------------------------------------------
    @invariant()
    def turn_numbers_are_contiguous(self) -> None:
        if self.session_id is None:
            return
        snap = self.snapshot()
        assert [n for n, _ in snap.turns] == list(range(1, snap.turn_count + 1))

    @invariant()
    def exactly_one_current_player_while_active(self) -> None:
        if self.session_id is None:
            return
        view = self.view()
        if view.status == SessionStatus.ACTIVE:
            assert view.current_player is not None
            assert view.current_player.status == ParticipantStatus.ACTIVE
            assert (view.turn_deadline is None) == view.narrator_pending
        else:
            assert view.turn_deadline is None


def _machine_for(url: str, reset: Any) -> type[StoryMachine]:
    return type(
        "BoundStoryMachine", (StoryMachine,), {"database_url": url, "reset": staticmethod(reset)}
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_random_story_sequences_keep_invariants(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "prop.db"
        url = f"sqlite+aiosqlite:///{path}"

        def reset() -> None:
            shutil.copy(template, path)

        examples = 40
    else:
        url = request.getfixturevalue("postgres_database")

        def reset() -> None:
            asyncio.run(_truncate_all(url))

        examples = 15
    machine = _machine_for(url, reset)
    machine.TestCase.settings = settings(
        max_examples=examples,
        stateful_step_count=25,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
