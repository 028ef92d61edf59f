from __future__ import annotations

import asyncio
import itertools
import time
from types import SimpleNamespace
from typing import Any

import pytest

from bot.discord.components import narrator_view
from bot.discord.narrator_messages import CURSOR, DiscordNarrationListener, PassageStream
from engine.story.views import NarrationOutcome, TimeoutOutcome

INTERVAL = 0.05


def stream_into(channel: Any, interval: float = INTERVAL, limit: int = 2000) -> PassageStream:
    async def get() -> Any:
        return channel

    return PassageStream(7, "job-1", get, interval=interval, limit=limit)


async def settle(seconds: float = INTERVAL * 4) -> None:
    await asyncio.sleep(seconds)


async def test_first_text_is_posted_with_a_cursor(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    stream = stream_into(channel)
    stream.update("The door")
    await settle()
    assert [m.content for m in channel.sent] == ["The door" + CURSOR]
    assert channel.send_kwargs[0]["allowed_mentions"].to_dict()["parse"] == []


async def test_rapid_updates_are_coalesced_into_the_latest_text(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    stream = stream_into(channel, interval=0.2)
    text = ""
    for word in "the door opens onto a staircase of salt and silver light".split():
        text += word + " "
        stream.update(text)
    await settle(0.1)
    message = channel.sent[0]
    # One post, no backlog of stale edits: everything arrived before the first render.
    assert len(channel.sent) == 1 and message.edits == []
    assert message.content == text.strip() + CURSOR


async def test_edits_are_at_least_the_interval_apart(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    stream = stream_into(channel, interval=0.1)
    stamps: list[float] = []
    text = ""
    deadline = time.monotonic() + 0.6
    while time.monotonic() < deadline:
        text += "x "
        stream.update(text)
        await asyncio.sleep(0.01)
    await settle(0.3)
    message = channel.sent[0]
    original_edit = message.edit

    async def timed_edit(**kwargs: Any) -> Any:
        stamps.append(time.monotonic())
        return await original_edit(**kwargs)

    # Measure a second burst with the instrumented edit.
    message.edit = timed_edit  # type: ignore[method-assign]
    for _ in range(40):
        text += "y "
        stream.update(text)
        await asyncio.sleep(0.01)
    await settle(0.3)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert len(stamps) >= 2
    assert all(gap >= 0.09 for gap in gaps)
    assert message.content == text.strip() + CURSOR


async def test_final_text_always_replaces_the_stream_and_gets_controls(
    fake: SimpleNamespace,
) -> None:
    channel = fake.Channel()
    stream = stream_into(channel, interval=10.0)
    stream.update("The door")
    await settle(0.05)
    stream.update("The door opens")  # held back by the interval
    view = narrator_view(7, fake.narrator_turn())
    messages = await stream.finish("The door opens slowly.", view)
    assert [m.content for m in messages] == ["The door opens slowly."]
    assert messages[0].view is view
    assert len(channel.sent) == 1


async def test_long_passages_are_split_and_shrinking_text_drops_extra_messages(
    fake: SimpleNamespace,
) -> None:
    channel = fake.Channel()
    stream = stream_into(channel, limit=100)
    sentence = "The tide rose over the stones. "
    stream.update(sentence * 10)
    await settle()
    assert len(channel.visible) >= 3
    assert all(len(m.content) <= 100 for m in channel.visible)
    messages = await stream.finish((sentence * 2).strip(), None)
    assert len(messages) == 1 and len(channel.visible) == 1
    assert messages[0].content == (sentence * 2).strip()


async def test_a_passage_without_streaming_is_posted_whole(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    messages = await stream_into(channel).finish("Night falls.", None)
    assert [m.content for m in messages] == ["Night falls."]


async def test_discarding_deletes_what_was_shown(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    stream = stream_into(channel)
    stream.update("Something unkind")
    await settle()
    await stream.discard()
    assert channel.visible == [] and stream.closed


async def test_a_deleted_part_is_posted_again(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    stream = stream_into(channel)
    stream.update("The door")
    await settle()
    channel.sent[0].deleted = True
    messages = await stream.finish("The door opens.", None)
    assert [m.content for m in messages] == ["The door opens."]
    assert not messages[0].deleted


# The listener -----------------------------------------------------------------------------------
class FakeSessions:
    def __init__(self, view: Any) -> None:
        self.view = view
        self.turn_messages: list[tuple[int, int, int]] = []
        # The listener reads through the story service's parts; both are this fake.
        self.queries = self.turns = self

    async def get(self, session_id: int) -> Any:
        return self.view

    async def set_turn_message(self, session_id: int, number: int, message_id: int) -> None:
        self.turn_messages.append((session_id, number, message_id))


def listener_for(channel: Any, view: Any, **kwargs: Any) -> tuple[Any, FakeSessions]:
    async def resolve(channel_id: int) -> Any:
        return channel if channel_id == channel.id else None

    listener = DiscordNarrationListener(
        resolve, view_factory=narrator_view, edit_interval=INTERVAL, **kwargs
    )
    sessions = FakeSessions(view)
    listener.bind(sessions)  # type: ignore[arg-type]
    return listener, sessions


async def test_stored_passage_is_finished_recorded_and_pings_only_the_next_player(
    fake: SimpleNamespace,
) -> None:
    channel = fake.Channel()
    view = fake.session_view(current=2)
    listener, sessions = listener_for(channel, view)
    await listener.narration_progress(7, "job-1", "The door")
    await settle()
    turn = fake.narrator_turn(4, "The door opens.", job_id="job-1")
    await listener.narration_stored(NarrationOutcome(view, turn, duplicate=False))
    await listener.drain()
    passage, ping = channel.sent
    assert passage.content == "The door opens."
    assert [c["custom_id"] for row in passage.view.to_components() for c in row["components"]] == [
        "tw:retry:7:4",
        "tw:undo:7:4",
    ]
    assert sessions.turn_messages == [(7, 4, passage.id)]
    assert "<@2>" in ping.content
    assert channel.send_kwargs[1]["allowed_mentions"].to_dict()["users"] == [2]
    assert channel.send_kwargs[0]["allowed_mentions"].to_dict() == {"parse": []}


async def test_a_retried_passage_replaces_the_old_message(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    old = await channel.send("First version.")
    view = fake.session_view(current=2)
    listener, sessions = listener_for(channel, view)
    turn = fake.narrator_turn(
        4, "Second version.", job_id="job-2", alternatives=("First version.",), message_id=old.id
    )
    await listener.narration_stored(NarrationOutcome(view, turn, duplicate=False))
    await listener.drain()
    assert old.deleted
    new = channel.visible[0]
    assert new.content == "Second version."
    assert sessions.turn_messages == [(7, 4, new.id)]
    assert len(new.view.to_components()) == 2  # buttons and the version menu


async def test_failed_narration_drops_partial_text_and_hands_the_turn_back(
    fake: SimpleNamespace,
) -> None:
    channel = fake.Channel()
    view = fake.session_view(current=1)
    listener, _ = listener_for(channel, view)
    await listener.narration_progress(7, "job-1", "Half a sent")
    await settle()
    await listener.narration_failed(view, "the worker stopped")
    await listener.drain()
    notice = channel.visible[-1]
    assert channel.sent[0].deleted
    assert "could not continue" in notice.content and "<@1>" in notice.content
    assert channel.send_kwargs[-1]["allowed_mentions"].to_dict()["users"] == [1]


async def test_filtered_passage_is_withdrawn(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    view = fake.session_view(current=1)
    listener, _ = listener_for(channel, view)
    await listener.narration_progress(7, "job-1", "Something that broke the rules")
    await settle()
    await listener.narration_filtered(view, "job-1", replaced=False)
    await listener.drain()
    assert channel.visible == []


async def test_timeout_names_the_skipped_player_and_pings_the_next(
    fake: SimpleNamespace,
) -> None:
    channel = fake.Channel()
    view = fake.session_view(current=2)
    listener, _ = listener_for(channel, view)
    skipped = fake.participant(1, 1, "Alice")
    await listener.timed_out(TimeoutOutcome(view, skipped, marked_away=True))
    await listener.drain()
    (notice,) = channel.sent
    assert "Alice ran out of time" in notice.content and "away" in notice.content
    assert channel.send_kwargs[0]["allowed_mentions"].to_dict()["users"] == [2]


async def test_unreachable_channel_is_not_an_error(fake: SimpleNamespace) -> None:
    channel = fake.Channel(channel_id=555)
    view = fake.session_view(current=2)  # channel 100: not resolvable
    listener, sessions = listener_for(channel, view)
    turn = fake.narrator_turn()
    await listener.narration_stored(NarrationOutcome(view, turn, duplicate=False))
    await listener.drain()
    assert channel.sent == [] and sessions.turn_messages == []


async def test_streams_nobody_finished_are_forgotten(fake: SimpleNamespace) -> None:
    channel = fake.Channel()
    now = [0.0]
    listener, _ = listener_for(
        channel, fake.session_view(current=1), clock=lambda: now[0], stale_after=60
    )
    await listener.narration_progress(7, "job-old", "abandoned")
    now[0] = 120.0
    await listener.narration_progress(7, "job-new", "fresh")
    assert set(listener._streams) == {"job-new"}
    await listener.close()


@pytest.mark.parametrize("keep", [None, "job-2"])
async def test_discarding_a_session_keeps_only_the_named_job(
    fake: SimpleNamespace, keep: str | None
) -> None:
    channel = fake.Channel()
    listener, _ = listener_for(channel, fake.session_view(current=1))
    await listener.narration_progress(7, "job-1", "one")
    await listener.narration_progress(7, "job-2", "two")
    await settle()
    await listener.discard_session(7, keep_job=keep)
    assert set(listener._streams) == ({keep} if keep else set())
    await listener.close()
