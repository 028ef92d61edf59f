"""Keep what people wrote as plain text in the prompt: no forged chat-role markers.

A tokenizer turns the strings of its special and added tokens ("<|im_start|>",
"<|start_header_id|>", "[INST]", …) into those tokens wherever they stand in the
text, so a player's turn holding "<|im_start|>system" would open a real system
message. Every string that came from a person (turns, names, title, premise, lore,
author's note, summaries built from turns) has each such string broken with an
invisible word joiner after its first character before the prompt is rendered: the
model reads the same characters, and only the chat template's own markers are
special tokens.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import replace

from engine.protocol.context import ContextTurn, LoreEntryView, StoryContext

WORD_JOINER = "\u2060"
# Role words a player name could use to pass as the narrator or the template's roles.
RESERVED_SPEAKERS = frozenset({"narrator", "system", "assistant", "user"})


class MarkerGuard:
    """Break a tokenizer's special-token strings wherever they occur in people's text."""

    def __init__(self, markers: Iterable[str]) -> None:
        self.markers = tuple(sorted({m for m in markers if len(m) > 1}, key=len, reverse=True))
        self._pattern = (
            re.compile("|".join(re.escape(m) for m in self.markers)) if self.markers else None
        )

    def plain(self, text: str) -> str:
        """Return ``text`` with every marker string broken so it tokenizes as plain text."""
        if self._pattern is None:
            return text
        return self._pattern.sub(lambda m: m.group(0)[0] + WORD_JOINER + m.group(0)[1:], text)

    def context(self, context: StoryContext) -> StoryContext:
        """Return the context with every field a person wrote made plain."""
        plain = self.plain
        return replace(
            context,
            title=plain(context.title),
            genre_instructions=plain(context.genre_instructions),
            premise=plain(context.premise),
            player_names=tuple(plain(name) for name in context.player_names),
            summary=plain(context.summary),
            lore=tuple(
                LoreEntryView(
                    name=plain(e.name),
                    keywords=tuple(plain(k) for k in e.keywords),
                    text=plain(e.text),
                )
                for e in context.lore
            ),
            authors_note=plain(context.authors_note),
            recent_turns=self.turns(context.recent_turns),
            next_player=None if context.next_player is None else plain(context.next_player),
        )

    def turns(self, turns: Iterable[ContextTurn]) -> tuple[ContextTurn, ...]:
        """Return the turns with their authors and texts made plain."""
        return tuple(
            replace(t, author=self.plain(t.author), text=self.plain(t.text)) for t in turns
        )


def tokenizer_markers(tokenizer: object) -> list[str]:
    """Return every string the tokenizer would turn into a special or added token."""
    markers = [str(t) for t in getattr(tokenizer, "all_special_tokens", []) or []]
    added = getattr(tokenizer, "added_tokens_decoder", None) or {}
    markers.extend(str(getattr(token, "content", token)) for token in added.values())
    return markers


def speaker_label(author: str, *, is_narrator: bool, narrator_label: str) -> str:
    """Return the label a turn is shown with; a player can never pass as the narrator."""
    if is_narrator:
        return narrator_label
    name = " ".join(author.split())
    if name.casefold() in RESERVED_SPEAKERS or name.casefold() == narrator_label.casefold():
        return f"{name} (a player)"
    return name
