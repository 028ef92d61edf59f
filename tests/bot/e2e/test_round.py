"""A full round: three players write in the channel and the narrator answers each of them."""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

from storage.models import TurnKind

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

PATCH_MESSAGE = "PATCH /channels/{channel_id}/messages/{message_id}"
TURNS = {
    "alice": "Alice lights the lantern and climbs the stairs.",
    "bob": "Bob follows with a coil of rope over his shoulder.",
    "cara": "Cara hums an old sea song as the door creaks open.",
}


async def test_three_players_and_the_narrator_play_a_round(table: StoryTable) -> None:
    double = table.double
    async with table.running() as bot:
        await table.short_passages()
        view = await table.start_story("alice", "bob", "cara")
        assert [p.display_name for p in view.rotation] == ["Alice", "Bob", "Cara the Bard"]
        passages = []
        for writer, following in (("alice", "bob"), ("bob", "cara"), ("cara", "alice")):
            turn = await table.say(writer, TURNS[writer])
            passage = await table.passage(after=turn)
            ping = await table.ping(following, after=passage)
            # The passage streamed into one message; only the ping follows it.
            assert [m.id for m in table.bot_messages() if m.id > turn.id] == [passage.id, ping.id]
            passages.append(passage)
        await bot.narration.drain()

        turns = await table.turns()
        assert [t.kind for t in turns] == [TurnKind.PLAYER, TurnKind.NARRATOR] * 3
        assert [t.text for t in turns if t.kind == TurnKind.PLAYER] == list(TURNS.values())
        narrator_turns = [t for t in turns if t.kind == TurnKind.NARRATOR]
        for passage, stored in zip(passages, narrator_turns, strict=True):
            # One message per passage, finished with the stored text and its two buttons.
            assert stored.discord_message_id == passage.id
            assert passage.content == stored.text
            assert passage.custom_ids() == [
                f"tw:retry:{view.id}:{stored.number}",
                f"tw:undo:{view.id}:{stored.number}",
            ]
        session = await table.session()
        assert session.current_player is not None
        assert session.current_player.user_id == table.user("alice").id

    # Each passage grew in place: the first text was posted, later text was edited in, and
    # streaming edits kept to the configured interval. The final edit is exempt on purpose:
    # the finished passage is shown at once.
    interval = bot.options.edit_interval_seconds
    streamed = 0
    for passage in passages:
        edits = [r for r in double.requests_to(PATCH_MESSAGE) if r.path.endswith(f"/{passage.id}")]
        assert edits, "the passage was finished by editing the message it streamed into"
        moments = [passage.created_at]
        for edit in edits:
            if str(edit.body.get("content", "")).endswith(" ▌"):
                moments.append(edit.at)
                streamed += 1
        gaps = [later - earlier for earlier, later in itertools.pairwise(moments)]
        assert all(gap >= interval for gap in gaps), gaps
    assert streamed, "at least one passage was edited while the narrator was still writing"

    # Only "your turn" messages ping, each exactly the player whose turn it is; the
    # announcement of the first turn does not ping Alice, who began the story herself.
    pings = table.audit_mentions()
    ids = {name: table.user(name).id for name in ("alice", "bob", "cara")}
    assert [users for _, users in pings] == [[ids["bob"]], [ids["cara"]], [ids["alice"]]]
    assert [users for _, users in table.notified()] == [
        [ids["bob"]],
        [ids["cara"]],
        [ids["alice"]],
    ]
