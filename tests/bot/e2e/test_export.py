"""`/story export`: the story arrives as a file for the one who asked."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.bot.e2e.conftest import StoryTable

TURN = "Alice finds a brass key under the third step."


@pytest.mark.parametrize(("fmt", "extension"), [("markdown", ".md"), ("html", ".html")])
async def test_export_sends_the_story_as_an_attachment(
    table: StoryTable, fmt: str, extension: str
) -> None:
    double = table.double
    async with table.running():
        await table.short_passages()
        await table.start_story("alice", "bob")
        turn = await table.say("alice", TURN)
        passage = await table.passage(after=turn)
        await table.ping("bob", after=passage)
        channel_messages = len(table.bot_messages())

        record = await table.command("bob", "story export", format=fmt)
        assert record.callback is not None and record.callback.ephemeral, "deferred privately"
        sent = await double.wait_for(
            lambda: next((m for m in double.interaction_responses(record) if m.files), None),
            timeout=15,
            what="the exported file",
        )
        assert sent.ephemeral and sent.content.startswith("📦 ")
        [upload] = sent.files
        assert upload.filename.endswith(extension)
        document = upload.text
        for text in ("The Lantern", TURN, "A lighthouse keeper finds a door in the sea."):
            assert (html.escape(text) if fmt == "html" else text) in document
        assert "Alice" in document
        # The narrator's passage is in the file, word for word where the format allows.
        words = [w for w in passage.content.split() if w.isascii() and w.isalpha() and len(w) > 3]
        assert all(word in document for word in words)
        assert len(table.bot_messages()) == channel_messages, "nothing public is posted"
